"""The README's Python snippets run as printed (issue 22: the plugin snippet lacked the
``hookimpl`` import, so a reader who copied it got a NameError). Each ```python block is run in
a fresh namespace; a snippet that defines a hook is then called, so a plugin registers."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_the_readme_has_python_snippets():
    assert SNIPPETS, "no ```python block found in README.md"


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_each_python_snippet_runs_as_printed(code):
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the project's own README
    for name, value in namespace.items():
        if name.startswith("register_") and callable(value):
            from harness.registry import Registry

            kind = {"strategies": "strategy"}.get(name.removeprefix("register_"), name.removeprefix("register_")[:-1])
            registry = Registry(kind)
            value(registry)
            assert registry.names(), f"{name} registered nothing"
