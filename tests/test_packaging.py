"""The two install paths (pip via pyproject.toml, conda via environment.yml) pin the same versions,
and the set-up commands the README promises exist."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins_from_pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in reqs)


def pins_from_environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in pip if "==" in r)


def test_environment_yml_pins_match_pyproject():
    assert pins_from_pyproject() == pins_from_environment()


def test_every_dependency_is_pinned_and_installed_versions_match():
    from importlib.metadata import version
    for name, pin in pins_from_pyproject().items():
        installed = version(name)
        assert installed.split("+")[0] == pin, f"{name}: pinned {pin}, installed {installed}"


def test_readme_names_the_two_commands_and_ci_runs_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci[-1].strip() == "make test"
