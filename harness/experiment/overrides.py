"""Command-line edits of a config: ``--set KEY.PATH=VALUE`` and ``--unset KEY.PATH``.

Scope: parsing one edit, applying it to the raw YAML tree before validation, and saying which
edit a validation error comes from, so that the message names the ``--set`` argument the user
typed instead of a line of the YAML file that never held that value::

    error: --set decoders.0.params.num_beams=0: decoders[0].params.num_beams: Input should be ...

Key paths are dot-separated; list items are addressed by index (``decoders.1``, negative
indices count from the end) and ``*`` stands for every item of a list or every key of a mapping
(``benchmarks.*.params.limit=100``). Values are YAML (``[1, 4]``, ``{name: beam}``, ``null``).
A plugin named by a bare string (``decoders: [greedy]``) is expanded to ``{name: greedy}`` when an
edit reaches inside it. ``--unset`` deletes a key or a list item, so the default applies again.

Non-goals: editing YAML text (comments and layout are not preserved: the tree is edited),
appending to lists, and quoting dots inside keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ConfigErrors, HarnessError
from .yamlio import LineDict, load_yaml_text

WILDCARD = "*"
# sections whose items are plugin references, so a bare string is shorthand for {name: ...}
PLUGIN_LIST_SECTIONS = ("benchmarks", "strategies", "decoders", "metrics", "reporters")


def shorten(text: str, keep: int = 60) -> str:
    """An argument as errors quote it: whole when short, else its start and its length (a 3,000-part
    key path must not become a 20 kB error line)."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}... ({len(text):,} characters)"


@dataclass(frozen=True)
class Override:
    """One edit as typed on the command line."""

    text: str  # the argument as given, e.g. "decoders.0.params.num_beams=0"
    path: tuple[str, ...]  # key path parts; may contain "*"
    value: Any = None
    unset: bool = False
    shown: str | None = None  # how the user typed it, when not as --set/--unset (e.g. "--limit 10")

    @property
    def source(self) -> str:
        """Where errors about this edit point: the argument itself."""
        return self.shown or f"{'--unset' if self.unset else '--set'} {shorten(self.text)}"


def _split_path(text: str, source: str) -> tuple[str, ...]:
    from .yamlio import MAX_DEPTH

    parts = tuple(p.strip() for p in text.strip().split("."))
    if not text.strip() or not all(parts):
        raise ConfigError(source, "", "empty key in key path (write KEY.PATH, e.g. decoders.0.params.num_beams)")
    if len(parts) > MAX_DEPTH:  # the edit walks (and the config nests) one level per part
        raise ConfigError(source, "", f"the key path has {len(parts):,} parts; allowed: at most {MAX_DEPTH} "
                                      "(an experiment is a few levels deep)")
    return parts


def parse_set(text: str) -> Override:
    """``KEY.PATH=VALUE`` with VALUE parsed as YAML (an empty VALUE is the empty string)."""
    if "=" not in text:
        raise ConfigError(f"--set {shorten(text)}", "", "expected KEY.PATH=VALUE, e.g. decoders.0.params.num_beams=4 "
                                               "(to remove a key, use --unset KEY.PATH)")
    path_text, value_text = text.split("=", 1)
    source = f"--set {shorten(text)}"
    path = _split_path(path_text, source)
    value = load_yaml_text(value_text, source) if value_text.strip() else ""
    return Override(text, path, value)


def parse_unset(text: str) -> Override:
    """``KEY.PATH``: delete that key (or list item) so its default applies."""
    source = f"--unset {shorten(text)}"
    if "=" in text:
        raise ConfigError(source, "", "expected KEY.PATH without a value (to set a value, use --set KEY.PATH=VALUE)")
    return Override(text, _split_path(text, source), unset=True)


def _keypath(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _as_mapping(parent: Any, key: Any, node: Any, loc: tuple) -> Any:
    """A bare plugin name is shorthand for {name: ...}; expand it when an edit goes inside it."""
    if isinstance(node, str) and ((len(loc) == 2 and loc[0] in PLUGIN_LIST_SECTIONS and isinstance(loc[1], int))
                                  or loc == ("executor",)):
        expanded = LineDict(name=node)
        expanded.line = getattr(parent, "lines", {}).get(key)
        expanded.lines["name"] = expanded.line
        parent[key] = expanded
        return expanded
    return node


def apply(raw: Any, edit: Override) -> list[tuple]:
    """Apply ``edit`` to ``raw`` in place; returns the concrete key paths it touched (wildcards
    expanded), so errors found later can be traced back to it."""
    touched: list[tuple] = []

    def walk(parent: Any, key: Any, node: Any, i: int, loc: tuple) -> None:
        part, last = edit.path[i], i == len(edit.path) - 1
        node = _as_mapping(parent, key, node, loc) if parent is not None else node
        if isinstance(node, list):
            if part == WILDCARD:
                if not node:
                    raise ConfigError(edit.source, _keypath(loc), "'*' matches nothing: the list is empty")
                keys: list[Any] = list(range(len(node)))
            elif part.lstrip("-").isdigit():
                idx = int(part)
                if not -len(node) <= idx < len(node):
                    raise ConfigError(edit.source, _keypath(loc),
                                      f"index {idx} out of range (the list has {len(node)} items)")
                keys = [idx % len(node)]
            else:
                raise ConfigError(edit.source, _keypath(loc),
                                  f"is a list; use an index 0..{len(node) - 1} or '*', got '{part}'")
        elif isinstance(node, dict):
            if part == WILDCARD:
                if not node:
                    raise ConfigError(edit.source, _keypath(loc), "'*' matches nothing: the mapping is empty")
                keys = list(node)
            else:
                keys = [part]
        else:  # (the root is always a mapping: resolve() refuses anything else first)
            raise ConfigError(edit.source, _keypath(loc), f"is a {type(node).__name__}, cannot "
                                                         f"{'unset' if edit.unset else 'set'} '{part}' inside it")
        if last:
            if edit.unset:
                present = [k for k in keys if isinstance(node, list) or k in node]
                if not present and part != WILDCARD:
                    choices = ", ".join(map(str, node)) if isinstance(node, dict) else ""
                    raise ConfigError(edit.source, _keypath(loc + (part,)),
                                      "nothing to unset: no such key" + (f" (keys here: {choices})" if choices else ""))
                for k in sorted(present, key=lambda k: -k if isinstance(k, int) else 0):  # list: delete from the end
                    del node[k]
                    touched.append(loc + (k,))
            else:
                for k in keys:
                    node[k] = _copy(edit.value) if len(keys) > 1 else edit.value
                    touched.append(loc + (k,))
            return
        for k in keys:
            if isinstance(node, dict) and k not in node:
                if edit.unset:  # nothing below a missing key to delete
                    continue
                nxt = edit.path[i + 1]
                if nxt == WILDCARD or nxt.lstrip("-").isdigit():
                    raise ConfigError(edit.source, _keypath(loc + (k,)),
                                      f"is not in the config (its default applies), so it has no item '{nxt}'; "
                                      f"set the whole list instead, e.g. --set '{'.'.join(edit.path[:i + 1])}=[...]'")
                node[k] = LineDict()
            walk(node, k, node[k], i + 1, loc + (k,))

    walk(None, None, raw, 0, ())
    if edit.unset and not touched:
        raise ConfigError(edit.source, "", "nothing to unset: the key path matches no key")
    return touched


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def apply_all(raw: Any, edits: list[Override]) -> list[tuple[tuple, Override]]:
    """Apply the unsets, then the sets, in the order given; returns (touched path, edit) pairs.

    A value nested deep enough under a deep key path could together pass the depth limit each
    respects alone: the edited tree is measured again (without recursion)."""
    from .yamlio import MAX_DEPTH

    trail: list[tuple[tuple, Override]] = []
    for edit in [e for e in edits if e.unset] + [e for e in edits if not e.unset]:
        trail += [(p, edit) for p in apply(raw, edit)]
        if not edit.unset:
            stack = [(raw, 0)]
            while stack:
                node, depth = stack.pop()
                if depth > MAX_DEPTH:
                    raise ConfigError(edit.source, "", f"the edited config nests more than {MAX_DEPTH} levels deep; "
                                                       f"allowed: at most {MAX_DEPTH}")
                children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
                stack.extend((c, depth + 1) for c in children)
    return trail


def attribute(error: HarnessError, trail: list[tuple[tuple, Override]]) -> HarnessError:
    """Rewrite config errors located in a value that an edit put there (or removed) so they
    name that edit instead of the config file's line."""
    if not trail:
        return error
    if isinstance(error, ConfigErrors):
        return ConfigErrors([_attribute_one(e, trail) for e in error.errors])
    if isinstance(error, ConfigError):
        return _attribute_one(error, trail)
    return error


def _attribute_one(error: ConfigError, trail: list[tuple[tuple, Override]]) -> ConfigError:
    if not error.keypath or error.source.startswith("--"):
        return error
    inside = ancestor = None
    for path, edit in trail:  # later edits win
        kp = _keypath(path)
        if error.keypath == kp or error.keypath.startswith((kp + ".", kp + "[")):
            inside = edit
        elif kp.startswith((error.keypath + ".", error.keypath + "[")):
            ancestor = edit
    edit = inside or ancestor
    if edit is None:
        return error
    return ConfigError(edit.source, error.keypath, error.message)
