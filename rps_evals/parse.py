"""Reading a model response: reasoning removal, program extraction, JSON fallback, strict grids.

These are the parsing rules of the metric definitions (docs/metrics.md). Every front end calls
`parse_response`; nothing here ever raises on model text: garbage parses to "nothing found".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from numbers import Integral
from typing import Any

Grid = list[list[int]]

MAX_SIDE = 30

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
# A fence line: optional indentation, three or more backticks, then the info string up to the end
# of the line. One regex pass over the text finds them all, so parsing stays linear in its length.
_FENCE_LINE = re.compile(r"^[ \t]*`{3,}([^\n]*)$", re.MULTILINE)
# An info string is a language name (python, py, python3, json, c++, ...): one word, no spaces or
# colons. Anything else after the backticks (```Final answer:) is prose glued to a closing fence.
_LANGUAGE = re.compile(r"[A-Za-z][A-Za-z0-9_+#.-]*")
_PROGRAM_LANG = re.compile(r"(?:python|py)[0-9.]*|")  # python, py, python3, python3.11, unlabelled
_PREDICTIONS_LABEL = "Predicted test outputs:"


@dataclass(frozen=True)
class ParsedResponse:
    """What a response offers: a program source (or None) and JSON predictions per test input."""

    program: str | None
    json_predictions: list[Grid | None]  # length m; None where the JSON gave no valid grid


def as_grid(value: Any) -> Grid | None:
    """Return `value` as a strict ARC grid, or None if it is not one.

    Strict: 1..30 rows of equal length 1..30; every cell an int (numpy integers and tuples are
    converted) in 0..9. bool is not an int here, and 1.0 is not 1.
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):  # numpy array or scalar
        try:
            value = value.tolist()
        except Exception:
            return None
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_SIDE:
        return None
    width = None
    grid: Grid = []
    for row in value:
        if hasattr(row, "tolist") and not isinstance(row, (list, tuple)):
            row = row.tolist()
        if not isinstance(row, (list, tuple)) or not 1 <= len(row) <= MAX_SIDE:
            return None
        if width is None:
            width = len(row)
        elif len(row) != width:
            return None
        if all(type(cell) is int and 0 <= cell <= 9 for cell in row):  # the common case, fast
            grid.append(list(row))
            continue
        out_row = []
        for cell in row:
            # numpy integer scalars are Integral; bool (and numpy.bool_) must be rejected first.
            if isinstance(cell, bool) or type(cell).__name__ == "bool_" or not isinstance(cell, Integral):
                return None
            cell = int(cell)
            if not 0 <= cell <= 9:
                return None
            out_row.append(cell)
        grid.append(out_row)
    return grid


def strip_reasoning(text: str) -> str:
    """Remove closed <think> blocks; an unclosed <think> swallows the rest of the text.

    Plain `find`s rather than a lazy regex: a response that repeats `<think>` without closing it
    must not cost a scan to the end of the text per repetition.
    """
    kept, pos = [], 0
    while (start := text.find(_THINK_OPEN, pos)) >= 0:
        kept.append(text[pos:start])
        end = text.find(_THINK_CLOSE, start + len(_THINK_OPEN))
        if end < 0:
            return "".join(kept)
        pos = end + len(_THINK_CLOSE)
    kept.append(text[pos:])
    return "".join(kept)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every closed fenced block as (language, body), in order, read the way a person reads them.

    Fence lines are taken in order. A bare fence (```) or a fence glued to prose (```Final answer:)
    closes the open block; with nothing open, a bare fence opens an unlabelled block and a glued one
    is prose. An opening fence met while a block is open means that block was left open:
    - a python/py/unlabelled opening fence is the start of the final block (reading backwards from
      its closing fence, the nearest opening fence), so the piece left open is dropped;
    - any other language (```json) splits the block there: once it closes, the piece before the
      split is a block too (a program left unclosed just before its JSON answer is still read).
    A block still open at the end of the text (a truncated response) is not a block.
    """
    blocks: list[tuple[str, str]] = []
    split_off: list[tuple[str, str]] = []  # pieces of the open block that ended at a ```json-like fence
    open_lang: str | None = None
    body_start = 0
    for fence in _FENCE_LINE.finditer(text):
        info = fence.group(1).strip()
        is_language = info == "" or _LANGUAGE.fullmatch(info) is not None
        opens_language = info != "" and is_language
        if open_lang is None:
            if is_language:
                open_lang, body_start = info.lower(), fence.end() + 1
            continue
        if opens_language:
            if _PROGRAM_LANG.fullmatch(info.lower()):
                split_off = []
            else:
                split_off.append((open_lang, text[body_start:fence.start()]))
            open_lang, body_start = info.lower(), fence.end() + 1
            continue
        blocks += split_off
        blocks.append((open_lang, text[body_start:fence.start()]))
        split_off, open_lang = [], None
    return blocks


def extract_program(text: str) -> str | None:
    """The last closed python/py/unlabelled fenced block that defines `def transform(`."""
    found = None
    for lang, body in fenced_blocks(text):
        if _PROGRAM_LANG.fullmatch(lang) and "def transform(" in body:
            found = body
    return found


def extract_json_predictions(text: str, num_tests: int) -> list[Grid | None]:
    """Grids from the JSON after the last `Predicted test outputs:` label, one slot per test input."""
    empty: list[Grid | None] = [None] * num_tests
    at = text.rfind(_PREDICTIONS_LABEL)
    if at < 0:
        return empty
    tail = text[at + len(_PREDICTIONS_LABEL):].strip()
    fenced = re.match(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)(?:```|$)", tail, re.DOTALL | re.IGNORECASE)
    if fenced:
        tail = fenced.group(1).strip()
    value = _first_json_value(tail)
    if value is None:
        return empty
    if num_tests == 1 and as_grid(value) is not None:
        return [as_grid(value)]
    if isinstance(value, list) and len(value) == num_tests:
        return [as_grid(v) for v in value]
    return empty


def _first_json_value(text: str) -> Any:
    """Decode the JSON value at the start of `text` (trailing prose allowed); None if there is none."""
    if not text:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return value


def parse_response(completion: str | None, num_tests: int) -> ParsedResponse:
    """Apply the parsing rules to one completion for a task with `num_tests` test inputs."""
    if not completion:
        return ParsedResponse(None, [None] * num_tests)
    text = strip_reasoning(completion)
    return ParsedResponse(extract_program(text), extract_json_predictions(text, num_tests))
