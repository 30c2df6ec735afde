"""Safe YAML loading that remembers line numbers and refuses duplicate keys.

Only ``yaml.SafeLoader`` is used: a config can never construct Python objects or run code.
Mappings come back as :class:`LineDict` (a plain ``dict`` with a ``lines`` attribute mapping
each key to its 1-based line), sequences as :class:`LineList`, so validation errors can
point at ``file:line``. A document nested more than :data:`MAX_DEPTH` levels (which would end in
a RecursionError) or expanding through aliases to more than :data:`MAX_NODES` values is refused
with one located error before anything walks it. Only regular files are read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..params import path_kind


class LineDict(dict):
    line: int | None = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict[Any, int] = {}


class LineList(list):
    line: int | None = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict[int, int] = {}


class _Loader(yaml.SafeLoader):
    source = "<config>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise ConfigError(loader.source, "", f"a mapping key must be a scalar, got {key!r}", line)
        if key in out:
            raise ConfigError(
                loader.source, str(key),
                f"duplicate key (first given on line {out.lines[key]}); each key may appear once",
                line)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode, deep: bool = False) -> LineList:
    out = LineList()
    out.line = node.start_mark.line + 1
    for i, child in enumerate(node.value):
        out.append(loader.construct_object(child, deep=True))
        out.lines[i] = child.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


MAX_NODES = 100_000  # far above any real experiment; stops "billion laughs" alias bombs
MAX_DEPTH = 100  # an experiment is < 10 levels deep; recursive code (PyYAML's composer, pydantic) dies near 300


def _check_depth(text: str, source: str) -> None:
    """Refuse mappings/sequences nested more than MAX_DEPTH deep, from the parser's event stream
    (which is not recursive), before PyYAML's recursive composer can hit Python's recursion limit."""
    scanner = yaml.SafeLoader(text)
    depth = 0
    try:
        while scanner.check_event():
            event = scanner.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(source, "", f"mappings/lists nested more than {MAX_DEPTH} levels deep; "
                                                  f"allowed: at most {MAX_DEPTH}", event.start_mark.line + 1)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        scanner.dispose()


def _check_size(data: Any, source: str) -> None:
    """Aliases let a few lines stand for an exponentially large (or deep) tree; walk the expanded
    tree without recursion (stopping as soon as it is too big or too deep) before anything else does."""
    count, stack = 0, [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(source, "", f"the document expands to more than {MAX_NODES:,} values "
                                          "(anchors/aliases nested too deeply); refusing to load it")
        if depth > MAX_DEPTH:
            raise ConfigError(source, "", f"mappings/lists nested more than {MAX_DEPTH} levels deep once "
                                          f"aliases are expanded; allowed: at most {MAX_DEPTH}")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def load_yaml_text(text: str, source: str) -> Any:
    loader = _Loader(text)
    loader.source = source
    try:
        _check_depth(text, source)
        data = loader.get_single_data()
        _check_size(data, source)
        return data
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(source, "", f"malformed YAML: {problem}", line) from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "", f"malformed YAML: {e}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    path = Path(path)
    kind = path_kind(path)
    if kind == "missing":
        raise ConfigError(str(path), "", "file not found")
    if kind != "regular file":  # a FIFO or /dev/zero would block or never end
        raise ConfigError(str(path), "", f"is a {kind}; expected a YAML file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot be read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), "", f"not UTF-8 text (invalid byte at offset {e.start})") from None
    return load_yaml_text(text, str(path))


def line_of(root: Any, loc: tuple) -> int | None:
    """Best line number for a key path: the deepest node on the path that knows its line."""
    line = getattr(root, "line", None)
    node = root
    for part in loc:
        lines = getattr(node, "lines", None)
        if lines is not None and part in lines:
            line = lines[part]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return line
