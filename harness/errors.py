"""Errors a user can act on.

Every error raised for bad input is a :class:`HarnessError`; the CLI prints its message
and exits with code 2, without a traceback. Messages name the file, the key path and,
where it helps, the allowed values.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base class for errors caused by the user's input (config, data, plugin choice)."""

    exit_code = 2


class ConfigError(HarnessError):
    """One problem in one place of an experiment config (or a ``--set`` override)."""

    def __init__(self, source: str, keypath: str, message: str, line: int | None = None):
        self.source = source
        self.keypath = keypath
        self.message = message
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {keypath}: {message}" if keypath else f"{where}: {message}")


class ConfigErrors(HarnessError):
    """Several independent :class:`ConfigError` found in one pass; one line each."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class UnknownPluginError(HarnessError):
    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(unknown_choice_message(f"unknown {kind}", name, self.choices))


class DataError(HarnessError):
    """Benchmark data that cannot be used as asked (missing, misaligned, badly encoded)."""


class ModelLoadError(HarnessError):
    """A model path or id that does not hold a loadable model."""


# C0 controls but tab and newline, DEL, C1 controls: a terminal acts on them (ESC starts colour,
# cursor and title sequences; CR overwrites the line), so text from configs and data is shown
# with them escaped
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f)} | {
    c: f"\\u{c:04x}" for c in range(0x80, 0xa0)}


def printable(text: str) -> str:
    """``text`` with the control characters a terminal would act on written as escapes
    (``\\x1b[31m`` for an ANSI colour sequence), so labels and data in messages cannot recolour,
    move the cursor or retitle the user's terminal."""
    return text.translate(_CONTROLS) if any(ord(ch) in _CONTROLS for ch in text) else text


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_choice_message(what: str, name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    msg = f"{what} '{name}'"
    guess = did_you_mean(name, choices)
    msg += f"; did you mean '{guess}'?" if guess else "."
    return msg + f" Allowed: {', '.join(choices) if choices else '(none registered)'}"


def describe_exception(e: BaseException) -> str:
    """One line a user can act on: a HarnessError's own message, else the type and message,
    with a hint for out-of-memory errors (the most common reason a big cell fails)."""
    if isinstance(e, HarnessError):
        return str(e)
    message = f"{type(e).__name__}: {e}".strip().rstrip(":")
    if isinstance(e, MemoryError) or "OutOfMemory" in type(e).__name__ or "out of memory" in str(e).lower():
        message += " (out of memory: lower the batch_size, max_new_tokens or num_beams of this cell, or use a smaller model)"
    return message
