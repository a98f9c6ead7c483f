# The two set-up commands of the README:
#   make demo   install into .venv, generate the default data, train, evaluate, write runs/quickstart/report.md
#   make test   install into .venv and run the test suite
# and the paper's momentum-key recipe at CPU scale: make demo-paper (runs/paper_cpu/report.md)
# and, after editing a notebook or its .py twin (notebooks/jupytext.toml pairs them):
#   make notebooks   sync each notebook with its script twin, then strip outputs for committing
# Installing also sets up nbstripout as this clone's git filter for notebooks (.gitattributes): a notebook
# run and saved in JupyterLab, outputs and all, shows no change in git status.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart
ARGS ?=
# what nbstripout removes beyond its defaults (outputs, execution counts, widget state, run timings):
# the kernel's language_info, which JupyterLab fills in on save
NB_STRIP_KEYS := metadata.language_info

.PHONY: demo demo-paper test install clean-venv browser-deps notebooks git-filter browser-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	@$(MAKE) --no-print-directory git-filter
	touch $(STAMP)

# nbstripout as the git filter of this clone (skipped outside a git work tree)
git-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  $(VENV)/bin/nbstripout --install --attributes .gitattributes && \
	  git config filter.nbstripout.extrakeys "$(NB_STRIP_KEYS)"; fi

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m cckit demo configs/quickstart.yaml run_dir=$(RUN_DIR) $(ARGS)
	@echo "report: $(RUN_DIR)/report.md"

# the paper's recipe at CPU scale (momentum keys, queues, SGD + cosine): configs/paper_cpu.yaml
demo-paper: $(STAMP)
	$(PY) -m cckit demo configs/paper_cpu.yaml $(ARGS)
	@echo "report: runs/paper_cpu/report.md"

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# jupytext --sync takes the newer of notebook and twin as the source; strip outputs only after it,
# with the same nbstripout settings as the git filter, so a committed notebook passes the filter unchanged
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/0*.ipynb
	$(VENV)/bin/nbstripout --extra-keys "$(NB_STRIP_KEYS)" notebooks/0*.ipynb

# after make demo: the six notebooks in full mode in JupyterLab in headless Chromium, as a user runs
# them (in place, saved); screenshots and run times in runs/browser_check/
browser-check: $(STAMP)
	CCKIT_BROWSER_FULL=1 CCKIT_BROWSER_OUT=runs/browser_check $(PY) -m pytest -q -s tests/viz/test_browser.py -k every_notebook $(ARGS)

clean-venv:
	rm -rf $(VENV)

# Chromium and its WebDriver for tests/viz/test_browser.py (Debian/Ubuntu, as root); the test runs this
# itself when they are missing and skips, saying why, when it cannot install them.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi
