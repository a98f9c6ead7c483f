# The two set-up commands of the README:
#   make demo   install into .venv, generate the default data, train, evaluate, write runs/quickstart/report.md
#   make test   install into .venv and run the test suite
# and the paper's momentum-key recipe at CPU scale: make demo-paper (runs/paper_cpu/report.md)
# and, after editing a notebook or its .py twin (notebooks/jupytext.toml pairs them):
#   make notebooks   sync each notebook with its script twin, then strip outputs for committing
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart
ARGS ?=

.PHONY: demo demo-paper test install clean-venv browser-deps notebooks

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

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

# jupytext --sync takes the newer of notebook and twin as the source; strip outputs only after it
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/0*.ipynb
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/0*.ipynb

clean-venv:
	rm -rf $(VENV)

# Chromium and its WebDriver for tests/viz/test_browser.py (Debian/Ubuntu, as root); the test runs this
# itself when they are missing and skips, saying why, when it cannot install them.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; fi
