"""The notebooks in a real browser: JupyterLab on loopback, headless Chromium.

``test_cycle_browser_in_jupyterlab``: in 03_cycle_matches the slider moves the match.
``test_every_notebook_runs_in_jupyterlab``: all six notebooks run top to bottom without an error and
are saved, as a user runs them. In fast mode (tiny data, copies of the notebooks) it is part of
``make test``; ``CCKIT_BROWSER_FULL=1`` runs the notebooks themselves in full mode, after
``make demo`` (``make browser-check``), and then checks that running them left nothing for git to
commit (the nbstripout filter). Screenshots and per-notebook times go to ``$CCKIT_BROWSER_OUT``
when it is set.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-deps`` installs them, and this
test runs it when they are missing) and Selenium (a test extra). Skips, saying why, only when
Chromium cannot be installed.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "03_cycle_matches.ipynb"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def notebook_dirs(tmp_path_factory):
    """The data and run folders tests/test_notebooks.py uses (a trained fast run is reused)."""
    path = tmp_path_factory.getbasetemp() / "notebooks_fast"
    path.mkdir(exist_ok=True)
    return path


def _browser_binaries():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return chromium, driver


def _install_browser() -> tuple[str, str]:
    chromium, driver = _browser_binaries()
    if chromium and driver:
        return chromium, driver
    try:
        out = subprocess.run(["make", "-s", "browser-deps"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        log = (out.stdout + out.stderr).strip().splitlines()[-3:]
    except (OSError, subprocess.TimeoutExpired) as e:
        log = [repr(e)]
    chromium, driver = _browser_binaries()
    if not (chromium and driver):
        pytest.skip("Chromium/chromedriver are not installed and `make browser-deps` could not install them: "
                    + " | ".join(log))
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


@contextlib.contextmanager
def serve_lab(root: Path, tmp_path: Path, *, fast: bool):
    """JupyterLab serving ``root`` on 127.0.0.1 (its own config, settings and workspaces under
    ``tmp_path``); yields ``{"base", "token"}`` and shuts it and its kernels down afterwards."""
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrun"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "jset"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws")}
    env.pop("CCKIT_FAST", None)
    if fast:
        env["CCKIT_FAST"] = "1"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    settings = tmp_path / "jset" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
            try:
                if _get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in 90 s:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"base": base, "token": token}
    finally:
        try:  # shuts the kernels down too
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=10)
            server.wait(timeout=20)
        except Exception:
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()


def served_copy(path: Path, folder: Path, values: dict) -> Path:
    """A copy of notebook ``path`` in ``folder`` with ``values`` injected after its parameters cell,
    as papermill places them."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    injected = nbformat.v4.new_code_cell("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(1, injected)
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / path.name)
    return folder / path.name


def fast_values(notebook_dirs: Path) -> dict:
    """The parameters that point a notebook at the test session's tiny data and runs."""
    return {"CONFIG": str(ROOT / "configs" / "quickstart.yaml"), "RUN_DIR": str(notebook_dirs / "run"),
            "DATA_ROOT": str(notebook_dirs / "data")}


@pytest.fixture
def lab(tmp_path, notebook_dirs):
    """JupyterLab serving a copy of 03_cycle_matches (fast mode, tmp data and run) on 127.0.0.1."""
    served = tmp_path / "served"
    served_copy(NOTEBOOK, served, {**fast_values(notebook_dirs), "COMPARE": []})
    with serve_lab(served, tmp_path, fast=True) as server:
        yield {**server, "url": f"{server['base']}/lab/tree/{NOTEBOOK.name}?token={server['token']}"}


def _wait(driver, script, timeout, what, interval=0.5):
    """Poll a JavaScript expression until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


NOTEBOOK_JS = "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget; "
KERNEL_IDLE = NOTEBOOK_JS + """const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';"""
ERRORS = NOTEBOOK_JS + """return w.content.widgets.filter(c => c.model.type === 'code')
  .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);"""
LAST_RUN = NOTEBOOK_JS + """const cells = w.content.widgets.filter(c => c.model.type === 'code');
  return cells.every(c => c.model.executionCount !== null) && w.sessionContext.session.kernel.status === 'idle';"""
SHOWN = """const s = document.querySelector('.cckit-cycle-summary'); const img = document.querySelector('.widget-image');
  return s && img && img.src ? JSON.stringify([s.textContent, img.src]) : null;"""


def test_cycle_browser_in_jupyterlab(lab, tmp_path):
    chromium, driver_path = _install_browser()
    driver = _chrome(chromium, driver_path)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    try:
        driver.set_page_load_timeout(60)
        driver.get(lab["url"])
        _wait(driver, KERNEL_IDLE, 120, "the notebook to open with an idle kernel")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        before = json.loads(_wait(driver, SHOWN, 300, "the cycle browser widget to render"))
        _wait(driver, LAST_RUN, 120, "every cell to finish")
        errors = driver.execute_script(ERRORS)
        assert not errors, f"cells raised: {errors}"
        assert "query 0 " in before[0], before[0]

        handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        _wait(driver, SHOWN.replace("? JSON", f"&& s.textContent !== {json.dumps(before[0])} ? JSON"), 60,
              "the widget output to change after the slider moved")
        _wait(driver, SHOWN.replace("? JSON", f"&& img.src !== {json.dumps(before[1])} ? JSON"), 30,
              "the cycle figure to be redrawn")
        after = json.loads(driver.execute_script(SHOWN))
        assert "query 1 " in after[0], after[0]
        assert after[1] != before[1]
        image = driver.find_element(By.CSS_SELECTOR, ".widget-image")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", driver.find_element(By.CSS_SELECTOR, ".widget-slider"))
        shot = tmp_path / "03_cycle_matches.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000 and image.size["width"] > 300
    finally:
        driver.quit()


FULL = os.environ.get("CCKIT_BROWSER_FULL") == "1"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DONE = NOTEBOOK_JS + """const cells = w && w.content.widgets.filter(c => c.model.type === 'code');
  return !!cells && cells.length > 0 && cells.every(c => c.model.executionCount !== null)
    && w.sessionContext.session.kernel.status === 'idle';"""


def _chrome(chromium: str, driver_path: str):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test extra: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1400"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_every_notebook_runs_in_jupyterlab(tmp_path, notebook_dirs):
    chromium, driver_path = _install_browser()
    if FULL:
        if not (ROOT / "runs" / "quickstart" / "summary.json").is_file():
            pytest.skip("full mode runs after make demo: runs/quickstart has no finished main job")
        root, names, timeout = ROOT / "notebooks", [p.name for p in NOTEBOOKS], 1200
    else:
        root, timeout = tmp_path / "served", 600
        values = {"COMPARE": [], "COMPARISONS": {f"configs/{p}.yaml": str(ROOT / f"benchmarks/results/compare_{p}/compare_methods.json")
                                                 for p in ("paper_cpu", "quickstart_long")},
                  "PAPER_RUN_DIR": str(notebook_dirs / "paper_run"), "PAPER_CONFIG": str(ROOT / "configs/paper_cpu.yaml")}
        for path in NOTEBOOKS:
            text = path.with_suffix(".py").read_text()
            served_copy(path, root, {**fast_values(notebook_dirs), **{k: v for k, v in values.items() if f"\n{k} = " in text}})
        names = [p.name for p in NOTEBOOKS]
    out = Path(os.environ["CCKIT_BROWSER_OUT"]) if os.environ.get("CCKIT_BROWSER_OUT") else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    with serve_lab(root, tmp_path, fast=not FULL) as lab:
        driver = _chrome(chromium, driver_path)
        try:
            driver.set_page_load_timeout(60)
            for name in names:
                driver.get(f"{lab['base']}/lab/tree/{name}?token={lab['token']}")
                current = NOTEBOOK_JS + f"return !!w && !!w.context && w.context.path.endsWith({json.dumps(name)});"
                _wait(driver, current, 120, f"{name} to be the current tab")
                _wait(driver, KERNEL_IDLE, 120, f"{name} to open with an idle kernel")
                tic = time.monotonic()
                driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
                _wait(driver, DONE, timeout, f"every cell of {name} to finish", interval=2)
                times[name] = round(time.monotonic() - tic, 1)
                errors = driver.execute_script(ERRORS)
                assert not errors, f"{name}: cells raised {errors}"
                driver.execute_script("window.jupyterapp.commands.execute('docmanager:save');")
                _wait(driver, NOTEBOOK_JS + "return w && !w.context.model.dirty;", 60, f"{name} to be saved")
                driver.save_screenshot(str(out / f"{Path(name).stem}.png"))
        finally:
            driver.quit()
    (out / "times.json").write_text(json.dumps({"full": FULL, "seconds": times}, indent=1) + "\n")
    print("notebook run times (s):", times)
    import nbformat

    for name in names:  # saved as run: every code cell has its execution count on disk
        nb = nbformat.read(root / name, as_version=4)
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), f"{name} was not saved after running"
    if FULL:  # the notebooks a user ran and saved in place: git has nothing to commit
        diff = subprocess.run(["git", "diff", "--stat", "--", "notebooks"], cwd=ROOT, capture_output=True, text=True)
        assert diff.returncode == 0 and diff.stdout == "", f"running the notebooks changed what git would commit:\n{diff.stdout}"
