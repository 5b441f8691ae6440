"""Reading a model response: reasoning removal, program extraction, JSON fallback, strict grids.

These are the parsing rules of the metric definitions (docs/metrics.md). Every front end calls
`parse_response`; nothing here ever raises on model text: garbage parses to "nothing found".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import chain
from numbers import Integral
from typing import Any

Grid = list[list[int]]

MAX_SIDE = 30

# A reasoning tag as a person reads it: any case, spaces inside the brackets allowed.
_THINK_TAG = re.compile(r"<[ \t]*(/?)[ \t]*think[ \t]*>", re.IGNORECASE)
_THINK_CLOSE_TAG = re.compile(r"<[ \t]*/[ \t]*think[ \t]*>", re.IGNORECASE)
# Characters a person does not see: a fence indented by them is still a fence.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"
# A fence line: indentation, three or more backticks, then the info string up to the end of the line.
# One regex pass finds them all, so parsing stays linear in the length of the text.
_FENCE_LINE = re.compile(rf"^([ \t\u00a0{_INVISIBLE}]*)(`{{3,}})([^\n]*)$", re.MULTILINE)
# The info string's first word is its language (CommonMark), also written {python} or {.python}.
_INFO_WORD = re.compile(r"\{?\.?([A-Za-z][A-Za-z0-9_+#.-]*)")
_PROGRAM_LANG = re.compile(r"(?:python|py)[0-9.]*|")  # python, py, python3, python3.11, unlabelled
# Languages a model labels other blocks with. Any other word after the backticks (```Done,
# ```Output, ```Final answer:) is prose glued to a closing fence, never an opening fence.
_OTHER_LANGUAGES = frozenset("""
    json jsonc json5 javascript js typescript ts bash sh shell zsh console text txt plaintext plain
    markdown md yaml yml toml ini html xml css sql c h cpp c++ cxx java go rust rs ruby rb r julia
    matlab octave haskell hs scala kotlin swift php perl lua csharp cs fsharp diff latex tex math csv
    pseudocode pseudo ascii
""".split())
# A line that starts like Python (indented, a comment, a keyword, a call, an assignment, a literal);
# anything else at the start of a line (a sentence, a markdown label, a list item) is prose.
_CODE_LINE = re.compile(
    r"[ \t]|#(?!#)|[@\"'(\[{]"
    r"|(?:def|class|import|from|if|elif|else|for|while|try|except|finally|with|return|raise|assert"
    r"|pass|break|continue|global|nonlocal|del|lambda|async|await|yield)\b"
    r"|[A-Za-z_][\w.]*(?:[ \t]*[-+*/%&|^@<>]{0,2}=(?!=)|\(|\[)"
    r"|[A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)+[ \t]*="
)
_NEXT_LINE = re.compile(rf"(?:[ \t\u00a0{_INVISIBLE}]*\n)*([^\n]*)")  # the next non-blank line
_DEFINES_TRANSFORM = re.compile(r"^(?:async[ \t]+)?def[ \t]+transform[ \t]*\(", re.MULTILINE)
_PREDICTIONS_LABEL = "Predicted test outputs:"
# After the label: markdown that closes a bolded or quoted label (**label:**, `label:`), not a fence.
_LABEL_END = re.compile(r"[ \t]*(?:\*\*?|__?|`(?!``))?")
_LEADING_BLANK = re.compile(rf"[\s{_INVISIBLE}]*")
_JSON_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*(?:json[c5]?)?[ \t]*\n?(.*?)(?:\1|$)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class ParsedResponse:
    """What a response offers: a program source (or None) and JSON predictions per test input."""

    program: str | None
    json_predictions: list[Grid | None]  # length m; None where the JSON gave no valid grid


_ROWS = frozenset({list, tuple})
_LIST_ONLY = {list}
_INT_ONLY = {int}
_DIGITS = frozenset(range(10))


def as_grid(value: Any) -> Grid | None:
    """Return `value` as a strict ARC grid, or None if it is not one.

    Strict: 1..30 rows of equal length 1..30; every cell an int (numpy integers and tuples are
    converted) in 0..9. bool is not an int here, and 1.0 is not 1. A value that already is a list of
    int lists comes back as the same object (the caller must not mutate one and expect the other kept).
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):  # numpy array or scalar
        try:
            value = value.tolist()
        except Exception:
            return None
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_SIDE:
        return None
    # The common case, checked in bulk by C loops (no Python code per cell): rows that are lists or
    # tuples of one width, every cell exactly an int (not bool, not float) in 0..9. A list of int
    # lists (what JSON decodes to) is returned as it is, not copied.
    row_types = set(map(type, value))
    if row_types <= _ROWS:
        widths = set(map(len, value))
        if len(widths) != 1 or not 1 <= min(widths) <= MAX_SIDE:
            return None
        cells = list(chain.from_iterable(value))
        if set(map(type, cells)) == _INT_ONLY:
            if not set(cells) <= _DIGITS:
                return None
            return value if type(value) is list and row_types == _LIST_ONLY else [list(row) for row in value]
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


def grid_problem(value: Any) -> str | None:
    """Why `value` is not an ARC grid, in words (None when it is one); for reports, not for scoring,
    which only asks as_grid."""
    if as_grid(value) is not None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        try:
            value = value.tolist()
        except Exception:
            return f"a {type(value).__name__} that cannot be read as a list of rows"
    if value is None:
        return "None (nothing returned)"
    if not isinstance(value, (list, tuple)):
        return f"a {type(value).__name__}, not a list of rows"
    if not 1 <= len(value) <= MAX_SIDE:
        return f"{len(value)} rows (a grid has 1 to {MAX_SIDE})"
    width = None
    for i, row in enumerate(value):
        if hasattr(row, "tolist") and not isinstance(row, (list, tuple)):
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            return f"row {i} is a {type(row).__name__}, not a list of cells"
        if not 1 <= len(row) <= MAX_SIDE:
            return f"row {i} has {len(row)} cells (a row has 1 to {MAX_SIDE})"
        if width is not None and len(row) != width:
            return f"row {i} has {len(row)} cells, row 0 has {width}"
        width = len(row)
        for j, cell in enumerate(row):
            if isinstance(cell, bool) or type(cell).__name__ == "bool_" or not isinstance(cell, Integral):
                return f"cell [{i}][{j}] is the {type(cell).__name__} {cell!r} (cells are ints 0-9)"
            if not 0 <= int(cell) <= 9:
                return f"cell [{i}][{j}] is {int(cell)} (cells are ints 0-9)"
    return "not a grid"


def strip_reasoning(text: str) -> str:
    """Remove reasoning: closed <think> blocks, an unclosed <think> and all after it, and all
    before a lone </think> (see split_reasoning)."""
    return split_reasoning(text)[1]


def split_reasoning(text: str) -> tuple[list[str], str]:
    """(the reasoning pieces, the visible text) of a response: the pieces are the insides of closed
    <think> blocks, what follows an unclosed <think>, and all before a lone </think>.

    Our reading of tags SCORING.md does not name: a </think> with no <think> open ends reasoning
    that began in the prompt (DeepSeek-R1 and QwQ templates put <think> there), so everything before
    it is reasoning; a <think> inside an open one is part of it (the first </think> closes both, and a
    later lone </think> ends the rest); <Think> and <think > are tags too. One pass over the tags, so a
    response repeating `<think>` costs no rescan per repetition.
    """
    kept, thoughts, pos = [], [], 0
    tag = _THINK_TAG.search(text)
    while tag:
        if tag.group(1) == "/":  # a lone </think>: what came before it was reasoning
            thoughts += [*kept, text[pos:tag.start()]]
            kept, pos = [], tag.end()
        else:
            kept.append(text[pos:tag.start()])
            close = _THINK_CLOSE_TAG.search(text, tag.end())
            if close is None:
                thoughts.append(text[tag.end():])
                return thoughts, "".join(kept)
            thoughts.append(text[tag.end():close.start()])
            pos = close.end()
        tag = _THINK_TAG.search(text, pos)
    kept.append(text[pos:])
    return thoughts, "".join(kept)


class _Fence:
    """One fence line: where it is, its indentation and backticks, and what its info string makes it:
    `program` (python, py), `other` (json, ...), `bare` (nothing) or `prose` (glued text: closes only)."""

    __slots__ = ("start", "end", "indent", "ticks", "kind", "lang")

    def __init__(self, match: re.Match[str]):
        self.start, self.end = match.start(), match.end()
        self.indent, self.ticks = match.group(1), len(match.group(2))
        info = match.group(3).strip()
        word = _INFO_WORD.match(info)
        self.lang = word.group(1).lower().rstrip(".") if word else ""
        if not info:
            self.kind = "bare"
        elif word and _PROGRAM_LANG.fullmatch(self.lang):
            self.kind = "program"
        elif word and self.lang in _OTHER_LANGUAGES:
            self.kind = "other"
        else:
            self.kind, self.lang = "prose", ""


def _fences(text: str) -> list[_Fence]:
    """The fence lines that act, in order. Our reading of fence length (CommonMark): a block opened
    by four or more backticks is closed only by a fence at least as long, so a shorter fence inside it
    (a ``` in a string of the program) is text of the block."""
    fences: list[_Fence] = []
    open_ticks = None
    for match in _FENCE_LINE.finditer(text):
        fence = _Fence(match)
        if open_ticks is not None and fence.ticks < open_ticks:
            continue
        fences.append(fence)
        if open_ticks is None:
            open_ticks = None if fence.kind == "prose" else fence.ticks
        else:
            open_ticks = None if fence.kind in ("bare", "prose") else fence.ticks
    return fences


def _is_code(line: str) -> bool:
    return _CODE_LINE.match(line) is not None


def _code_follows(text: str, fence: _Fence) -> bool:
    """Whether the first non-blank line after a bare fence is code (the fence opens a block) rather
    than prose, another fence or the end of the text (the fence closes one)."""
    line = _NEXT_LINE.match(text, fence.end + 1).group(1)
    return bool(line.strip()) and _FENCE_LINE.match(line) is None and _is_code(line)


def _body(text: str, opener: _Fence, closer: _Fence, piece: bool) -> str:
    """The text between two fences. Our reading of indented fences (a block in a list item): when
    every non-blank line carries the opening fence's indentation, it is removed, as CommonMark does.
    A piece (the part of an open block before a split) loses its trailing prose lines."""
    body = text[min(opener.end + 1, closer.start):closer.start]
    if opener.indent:
        lines = body.split("\n")
        if all(line.startswith(opener.indent) or not line.strip() for line in lines):
            body = "\n".join(line[len(opener.indent):] if line.startswith(opener.indent) else line
                             for line in lines)
    if piece:
        lines = body.split("\n")
        while lines and not (lines[-1].strip() and _is_code(lines[-1])):
            lines.pop()
        body = "\n".join(lines) + "\n" if lines else ""
    return body


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every closed fenced block as (language, body), in order, read the way a person reads them.

    Read backwards, as SCORING.md says: from a closing fence (bare, or glued to prose such as
    ```Final answer:) to the nearest opening fence before it: a language fence, or a bare fence
    followed by code. A bare fence followed by prose, or a glued one, met on the way is a closing
    fence itself (the later one was stray). An opening fence met with no closing fence after it
    opens a block left open, which is dropped; except that a block opened by another language
    (```json) or a bare fence splits an open block: the piece before it is a block too, without
    its trailing prose (a program left open just before its JSON answer is still read).
    Line endings are read as a person sees them: CRLF and a lone CR are newlines.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[tuple[str, str]] = []
    closer: _Fence | None = None
    splits = False  # the closer is the opening fence of a block found after it
    for fence in reversed(_fences(text)):
        if closer is None:
            if fence.kind in ("bare", "prose"):
                closer = fence
            continue
        if fence.kind == "prose" or (fence.kind == "bare" and not _code_follows(text, fence)):
            closer, splits = fence, False
            continue
        blocks.append((fence.lang, _body(text, fence, closer, piece=splits)))
        closer, splits = (fence, True) if fence.kind in ("other", "bare") else (None, False)
    blocks.reverse()
    return blocks


def extract_program(text: str) -> str | None:
    """The last closed python/py/unlabelled fenced block that defines `transform`: a line starting
    `def transform(` (a comment or a call that mentions it defines nothing)."""
    found = None
    for lang, body in fenced_blocks(text):
        if _PROGRAM_LANG.fullmatch(lang) and _DEFINES_TRANSFORM.search(body):
            found = body
    return found


def extract_json_predictions(text: str, num_tests: int) -> list[Grid | None]:
    """Grids from the JSON after the last `Predicted test outputs:` label, one slot per test input.

    Our reading: a bolded or quoted label (**Predicted test outputs:**) is the label; the JSON may sit
    in a fence of three or more backticks or tildes labelled json, jsonc, json5 or nothing.
    """
    empty: list[Grid | None] = [None] * num_tests
    at = text.rfind(_PREDICTIONS_LABEL)
    if at < 0:
        return empty
    tail = text[at + len(_PREDICTIONS_LABEL):]
    tail = tail[_LABEL_END.match(tail).end():]
    tail = tail[_LEADING_BLANK.match(tail).end():]
    fenced = _JSON_FENCE.match(tail)
    if fenced:
        tail = fenced.group(2)
        tail = tail[_LEADING_BLANK.match(tail).end():]
    value = _first_json_value(tail)
    if value is None:
        return empty
    single = as_grid(value) if num_tests == 1 else None
    if single is not None:
        return [single]
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
