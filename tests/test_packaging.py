"""One list of pinned packages: constraints.txt (CI) and environment.yml (conda users) must agree."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]


def _pins(lines):
    return dict(
        re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==(\S+)", line).groups()
        for line in lines
        if re.match(r"^\s*-?\s*[A-Za-z0-9_.\-]+==", line)
    )


def test_environment_yml_pins_what_constraints_pin():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    environment = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert constraints == environment


def test_every_dependency_is_pinned_for_ci():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["dependencies"]]
    names += [re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["optional-dependencies"]["dev"]]
    pinned = {name.lower() for name in _pins((ROOT / "constraints.txt").read_text().splitlines())}
    assert set(names) <= pinned, set(names) - pinned
