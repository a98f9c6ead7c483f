"""03_cycle_matches in a real browser: JupyterLab on loopback, headless Chromium, the slider moves the match.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-deps`` installs them, and this
test runs it when they are missing) and Selenium (a test extra). Skips, saying why, only when
Chromium cannot be installed.
"""
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


@pytest.fixture
def lab(tmp_path, notebook_dirs):
    """JupyterLab serving a copy of 03_cycle_matches (fast mode, tmp data and run) on 127.0.0.1."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    values = {"CONFIG": str(ROOT / "configs" / "quickstart.yaml"), "COMPARE": [],
              "RUN_DIR": str(notebook_dirs / "run"), "DATA_ROOT": str(notebook_dirs / "data")}
    injected = nbformat.v4.new_code_cell("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    injected.metadata["tags"] = ["injected-parameters"]  # as papermill would place it: after the parameters cell
    nb.cells.insert(1, injected)
    served = tmp_path / "served"
    served.mkdir()
    nbformat.write(nb, served / NOTEBOOK.name)
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "CCKIT_FAST": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrun"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "jset"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws")}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
           "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    settings = tmp_path / "jset" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(cmd, cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
        yield {"url": f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", "base": base, "token": token}
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
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test extra: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
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
