"""The wheel ships every package: pyproject's hand-kept `packages` list agrees with the tree.

An editable install finds any package on disk, so a subpackage missing from the list passes every
other test and then fails only for users who `pip install` a built wheel."""
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _packages_on_disk() -> set[str]:
    found = set()
    for top, name in (("harness", "harness"), ("plugins", "harness_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join((name, *rel.parts)) if rel.parts else name)
    return found


def test_every_package_on_disk_is_listed_in_pyproject():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = _packages_on_disk()
    assert on_disk - declared == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert declared - on_disk == set(), "these listed packages do not exist"
