"""Safe YAML loading that remembers line numbers and refuses duplicate keys.

Only ``yaml.SafeLoader`` is used: a config can never construct Python objects or run code.
Mappings come back as :class:`LineDict` (a plain ``dict`` with a ``lines`` attribute mapping
each key to its 1-based line), sequences as :class:`LineList`, so validation errors can
point at ``file:line``. A document nested more than :data:`MAX_DEPTH` levels (which would end in
a RecursionError) or expanding through aliases to more than :data:`MAX_NODES` values is refused
with one located error before anything walks it: the limits are counted on the parser's event
stream (:func:`_check_events`), so a huge list or an alias bomb is refused at its first value
over the limit, with its key and line, before PyYAML builds anything. Files over
:data:`MAX_FILE_BYTES` are not parsed. Keys YAML reads as null or booleans (``null:``, ``on:``)
are refused at their line. Only regular files are read.
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
        if key is None or isinstance(key, bool):  # `null:`, `~:`, `on:`, `yes:`: YAML 1.1 reads them as values
            written = getattr(key_node, "value", "") or "(empty)"
            raise ConfigError(loader.source, "", f"key '{written}' is read by YAML as {str(key).lower() if key is not None else 'null'}, "
                                                 f"not as a name; quote it ('{written}': ...) or remove it", line)
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


MAX_NODES = 100_000  # far above any real experiment; stops "billion laughs" alias bombs and runaway lists
MAX_DEPTH = 100  # an experiment is < 10 levels deep; recursive code (PyYAML's composer, pydantic) dies near 300
MAX_FILE_BYTES = 10_000_000  # an experiment is a few KB; beyond this the pure-Python parser alone takes minutes
# aliases may repeat text, but the expanded document may not outgrow the file by more than this
ALIAS_SLACK_CHARS = 1_000_000

try:  # libyaml's parser: the same events, ~20x faster (PyYAML falls back to pure Python without it)
    _EventParser = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _EventParser = yaml.SafeLoader


def _keypath(parts: list) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Frame:
    """One open mapping or sequence while the event stream is read."""

    __slots__ = ("mapping", "key", "expect_key", "index", "anchor", "start")

    def __init__(self, mapping: bool, anchor: str | None, start: tuple[int, int]):
        self.mapping, self.anchor, self.start = mapping, anchor, start
        self.key: Any = None
        self.expect_key = mapping
        self.index = -1


def _check_events(text: str, source: str, parser_cls=None) -> None:
    """Refuse a document that is too deep, has too many values or grows too big through aliases,
    from the parser's event stream, before anything is built.

    The stream is read once and nothing is recursive or kept per value: depth, the number of
    values and the characters of scalars are counted as they arrive, an anchored node's counts
    are remembered when it closes and added again at every alias of it, so a 50 MB list or a
    billion-laughs bomb is stopped at the first value over the limit, naming its key and line."""
    if parser_cls is None:
        try:
            return _check_events(text, source, _EventParser)
        except yaml.YAMLError:
            # libyaml words syntax errors (and its own depth limit) differently: the pure-Python
            # parser, which builds the document afterwards, gives the message and the line
            if _EventParser is yaml.SafeLoader:
                raise
            return _check_events(text, source, yaml.SafeLoader)
    parser = parser_cls(text)
    stack: list[_Frame] = []
    nodes = chars = 0
    anchors: dict[str, tuple[int, int]] = {}
    aliased = False
    max_chars = len(text) + ALIAS_SLACK_CHARS

    def path(limit: int | None = None) -> str:
        parts: list = []
        for f in stack:
            if f.mapping:
                if f.key is not None:
                    parts.append(f.key)
            elif f.index >= 0:
                parts.append(f.index)
        return _keypath(parts[:limit])

    def fail(event, message: str, limit: int | None = None) -> None:
        raise ConfigError(source, path(limit), message, event.start_mark.line + 1)

    def value_event(event) -> bool:
        """Advance the enclosing collection past one node; True when the node is a mapping key."""
        if not stack:
            return False
        top = stack[-1]
        if top.mapping:
            if top.expect_key:
                top.expect_key = False
                return True
            top.expect_key = True
            return False
        top.index += 1
        return False

    def count(event, n: int, c: int, via_alias: bool) -> None:
        nonlocal nodes, chars
        nodes += n
        chars += c
        if nodes > MAX_NODES:
            if via_alias or aliased:
                fail(event, f"anchors/aliases expand the document to more than {MAX_NODES:,} values; allowed: at "
                            f"most {MAX_NODES:,}")
            fail(event, f"the document has more than {MAX_NODES:,} values (this list or mapping is too long for an "
                        f"experiment); allowed: at most {MAX_NODES:,}")
        if chars > max_chars:
            fail(event, f"anchors/aliases expand the document to more than {max_chars:,} characters (the file has "
                        f"{len(text):,}); allowed: at most the file's size plus {ALIAS_SLACK_CHARS:,}")

    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.ScalarEvent):
                is_key = value_event(event)
                if is_key:
                    stack[-1].key = event.value
                count(event, 1, len(event.value), False)
                if event.anchor:
                    anchors[event.anchor] = (1, len(event.value))
            elif isinstance(event, yaml.AliasEvent):
                aliased = True
                is_key = value_event(event)
                if is_key:
                    stack[-1].key = f"*{event.anchor}"
                n, c = anchors.get(event.anchor, (1, 0))
                count(event, n, c, True)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                value_event(event)
                count(event, 1, 0, False)
                stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor, (nodes, chars)))
                if len(stack) > MAX_DEPTH:
                    fail(event, f"mappings/lists nested more than {MAX_DEPTH} levels deep; allowed: at most "
                                f"{MAX_DEPTH}", limit=1)  # the key it starts under, not a hundred [0]s
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                if frame.anchor:
                    anchors[frame.anchor] = (nodes - frame.start[0] + 1, chars - frame.start[1])
    finally:
        parser.dispose()


def _check_size(data: Any, source: str) -> None:
    """A second line of defence after construction (merge keys ``<<`` copy values the event count
    sees once): walk the built tree without recursion, stopping as soon as it is too big or deep."""
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
        _check_events(text, source)
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
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(str(path), "", f"{size:,} bytes; an experiment config is a few KB (allowed: at most "
                                             f"{MAX_FILE_BYTES:,} bytes)")
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
