"""The JSON lines between supervisor and program, and what a program's return value may be.

Nothing a program writes is trusted: result lines are parsed strictly (no NaN/Infinity, bounded
size, any decoding or nesting error is the program's `error`). The functions a program process
reports with are bound here at import, so a program that monkey-patches json or os in its own
(forked) copy still gets its results reported; it cannot reach the runner's copy.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

from .limits import MAX_CELLS, TAIL

try:  # imported once, before the zygote forks, so every program starts with numpy warm
    import numpy as np
except ImportError:  # the runner still works for pure-Python programs
    np = None

RESULT_FD = 3
REQUEST_FD = 4
EXIT = os._exit
WRITE = os.write
DUMPS = json.dumps
LOADS = json.loads
_NDARRAY = np.ndarray if np is not None else None
_GENERIC = np.generic if np is not None else None


class OutputTooLarge(Exception):
    pass


class CallFailed(Exception):
    """transform() itself raised; carries the program's traceback text."""


def to_jsonable(value, budget=None):
    """Convert a return value to plain lists/ints/floats/... or raise (generators, cycles, objects).

    numpy arrays and scalars become lists and Python scalars; tuples become lists. Validation of
    the grid itself is the host's job: this only makes the value transportable.
    """
    budget = budget if budget is not None else [MAX_CELLS]
    if _NDARRAY is not None and isinstance(value, _NDARRAY):
        if value.size > MAX_CELLS:
            raise OutputTooLarge(f"returned array has {value.size} elements")
        value = value.tolist()
    elif _GENERIC is not None and isinstance(value, _GENERIC):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise OutputTooLarge(f"returned value has more than {MAX_CELLS} elements")
        return [to_jsonable(v, budget) for v in value]
    raise TypeError(f"transform returned a non-serialisable {type(value).__name__}")


def flush_prints() -> None:
    """The child ends with os._exit, which drops Python's buffers: flush what the program printed."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


def write_line(fd: int, obj) -> None:
    flush_prints()
    data = (DUMPS(obj, allow_nan=False) + "\n").encode()
    while data:
        data = data[WRITE(fd, data):]


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def strict_loads(data):
    """JSON as the runner accepts it from anything a program can write to: finite numbers only.
    Raises ValueError for anything else (bad UTF-8, NaN, 1e999, nesting deeper than Python's stack)."""
    try:
        return LOADS(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def tail(text: str) -> str:
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


def plain_id(request) -> object:
    """The request's id if it is one the host can have sent (a JSON scalar), else None."""
    value = request.get("id") if isinstance(request, dict) else None
    return value if isinstance(value, (str, int, float, bool)) or value is None else None


_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*(-?[0-9]{1,18})\s*[,}]')


def leading_id(line: bytes) -> int | None:
    """The id a request line we could not parse starts with (as the hosts write it), so that its
    sender can match the refusal to it; None if there is none."""
    found = _LEADING_ID.match(line[:64])
    return int(found.group(1)) if found else None
