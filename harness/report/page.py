"""The pieces every HTML page of the harness shares: templates, assets, safe JSON, the CSP.

The ``html`` reporter's report.html and the leaderboard's HTML export (:mod:`.leaderboards`) are
self-contained pages with the same look and the same defences; a third-party reporter can use
them too. :func:`environment` is a Jinja2 environment that autoescapes everything (model outputs
and config values are untrusted text) over a reporter's own template directory and this
package's ``templates/`` (``leaderboard.html.j2``, ``report.css``, ``sort.js``); :func:`asset`
reads one of the shared files; :func:`json_for_script` is JSON that cannot close its
``<script>`` element; :func:`csp_for` the Content-Security-Policy that allows only that script.
Non-goals: the pages' content (the reporters and templates decide it), assets fetched from a CDN.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment(templates: Path | None = None):
    """Jinja2 environment over ``templates`` (a reporter's own directory, searched first) and the
    shared :data:`TEMPLATES`."""
    import jinja2

    dirs = [str(TEMPLATES)] if templates is None else [str(templates), str(TEMPLATES)]
    # autoescape everything: model outputs and config values are untrusted text; control characters
    # (a NUL in a segment) are shown as the symbols for them, never written raw (finalize)
    return jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), autoescape=True, finalize=visible_controls,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


# C0 controls but tab, newline and carriage return, and DEL, as Unicode's control pictures
# (U+2400..U+2421: NUL is ␀); C1 controls as U+FFFD. Raw, a NUL is a parse error in HTML and
# other controls are invisible or garble the page.
_PICTURES = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0a, 0x0d)} | {0x7f: 0x2421} | {
    c: 0xfffd for c in range(0x80, 0xa0)}


def visible_controls(value: Any) -> Any:
    """A template value with its control characters made visible (Markup stays Markup: the
    pictures are not HTML syntax)."""
    if isinstance(value, str) and any(ord(ch) in _PICTURES for ch in value):
        from markupsafe import Markup

        shown = str(value).translate(_PICTURES)
        return Markup(shown) if isinstance(value, Markup) else shown
    return value


def asset(name: str) -> str:
    """A shared file of :data:`TEMPLATES` (``report.css``, ``sort.js``) as text, to inline."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and numpy scalars as Python numbers, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return json_safe(obj.item())
    return obj


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``,
    no raw U+2028/2029. The escapes are valid JSON, so ``JSON.parse`` returns the original text."""
    s = json.dumps(json_safe(obj), ensure_ascii=False, default=str)  # (C0 controls come out as \u00XX)
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
         .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return s.translate(_JSON_CONTROLS) if any(ord(ch) in _JSON_CONTROLS for ch in s) else s


# DEL and C1 controls, which json.dumps leaves raw: the same escapes, so the page holds no control bytes
_JSON_CONTROLS = {c: f"\\u{c:04x}" for c in (0x7f, *range(0x80, 0xa0))}


def csp_for(script: str) -> str:
    """The Content-Security-Policy of a page whose only script is ``script`` (allowed by its hash)."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
