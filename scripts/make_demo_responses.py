"""Write the bundled demo responses, `rps_evals/data/demo_arc1_training.jsonl`.

The demo is what `inspect eval rps_evals/arc1.py ... --model rps/replay` serves when no responses
file is given: 8 ARC-AGI-1 training tasks x 2 attempts, written by hand for this project so that
every row of the reliability table has something to count: correct programs, a crashing program
rescued by its JSON answer, an endless loop, a syntax error, a program returning floats, a JSON-only
answer, an answer cut off at the token limit, a reasoning block that never closes, and a failed API
call. The script scores what it wrote with the core (local runner: these are our own programs) and
refuses to write a file whose attempts do not come out as intended.

    python scripts/make_demo_responses.py            # rewrite the file and check it
    python scripts/make_demo_responses.py --check    # only check the committed file
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rps_evals.data import load_dataset
from rps_evals.execution.local import LocalExecutor
from rps_evals.records import read_responses
from rps_evals.scoring import score_attempts

DATASET = "arc1:training"
OUT = Path(__file__).resolve().parents[1] / "rps_evals" / "data" / "demo_arc1_training.jsonl"


def answer(reasoning: str, program: str | None, predictions: list | None) -> str:
    """A completion in the labeled structure the prompt asks for."""
    parts = [f"Reasoning:\n{reasoning}"]
    if program is not None:
        parts.append(f"Python program:\n```python\n{program.strip()}\n```")
    if predictions is not None:
        parts.append("Predicted test outputs:\n```json\n" + json.dumps(predictions) + "\n```")
    return "\n\n".join(parts) + "\n"


ROT180 = "def transform(grid):\n    return [row[::-1] for row in grid[::-1]]"
ROT180_NP = "import numpy as np\n\ndef transform(grid):\n    return np.rot90(np.array(grid), 2)"
SHIFT_DOWN = "def transform(grid):\n    return [[0] * len(grid[0])] + [row[:] for row in grid[:-1]]"
MIRROR = "def transform(grid):\n    return [list(reversed(row)) for row in grid]"
TRANSPOSE = "def transform(grid):\n    return [list(col) for col in zip(*grid)]"
DOUBLE = "def transform(grid):\n    return [row + row for row in grid]"
ROT90_CCW = "import numpy as np\n\ndef transform(grid):\n    return np.rot90(np.array(grid)).tolist()"
LOOP = "def transform(grid):\n    while True:\n        grid = [row[:] for row in grid]\n    return grid"
CRASH_ON_RED = (
    "def transform(grid):\n"
    "    if any(2 in row for row in grid):\n"
    "        raise ValueError('red cells are not handled')\n"
    "    return [[0] * len(grid[0])] + [row[:] for row in grid[:-1]]"
)
LEFT_HALF = "def transform(grid):\n    return [row[:3] for row in grid]"
SYNTAX_ERROR = "def transform(grid)\n    return [[6 if a or b else 0 for a, b in zip(l[:3], l[3:])] for l in grid]"
FLOATS = "def transform(grid):\n    return [[float(c) for c in row[::-1]] for row in grid[::-1]]"


def cases(tasks) -> list[tuple[dict, tuple[str, str]]]:
    """(response line, (expected source, expected program status)) for every demo attempt."""
    def out(task_id):
        return tasks[task_id].test_outputs

    def line(task_id, attempt, completion, stop_reason="stop", error=None):
        return {"task_id": task_id, "attempt": attempt, "completion": completion,
                "stop_reason": stop_reason, "error": error}

    return [
        # rotate 180: solved twice, once with numpy
        (line("3c9b0459", 1, answer("The grid is rotated by 180 degrees.", ROT180, out("3c9b0459"))),
         ("executed_program", "ok")),
        (line("3c9b0459", 2, answer("Rotate by a half turn.", ROT180_NP, None)), ("executed_program", "ok")),
        # shift down, two test inputs: solved; then a program that crashes on the first test input,
        # whose JSON answer fills that slot (json_fallback with a program error)
        (line("25ff71a9", 1, answer("Everything moves down one row.", SHIFT_DOWN, None)), ("executed_program", "ok")),
        (line("25ff71a9", 2, answer("Move down one row.", CRASH_ON_RED, out("25ff71a9"))), ("json_fallback", "error")),
        # mirror: an endless loop with no JSON answer, then a correct program
        (line("67a3c6ac", 1, answer("Each row is reversed; iterate until stable.", LOOP, None)), ("invalid", "timeout")),
        (line("67a3c6ac", 2, answer("Each row is reversed.", MIRROR, None)), ("executed_program", "ok")),
        # transpose: a JSON-only answer, then an answer cut off inside its program at the token limit
        (line("74dd1130", 1, answer("The output is the transpose of the input.", None, out("74dd1130"))),
         ("json_fallback", "no_program")),
        (line("74dd1130", 2, "Reasoning:\nRows become columns.\n\nPython program:\n```python\ndef transform(grid):\n"
                             "    return [list(col) for col in zi", stop_reason="max_tokens"),
         ("invalid", "no_program")),
        # side by side copy: a failed API call, then a correct program
        (line("a416b8f3", 1, None, stop_reason=None,
              error="APIConnectionError: Connection error (server closed the connection)"), ("invalid", "no_program")),
        (line("a416b8f3", 2, answer("The grid is repeated to its right.", DOUBLE, None)), ("executed_program", "ok")),
        # overlay of two halves, two test inputs: a wrong program that runs, then a syntax error
        # with a JSON answer of the wrong length (one grid for two test inputs)
        (line("dae9d2b5", 1, answer("Keep the left half.", LEFT_HALF, None)), ("executed_program", "ok")),
        (line("dae9d2b5", 2, answer("Cells set in either half become 6.", SYNTAX_ERROR, out("dae9d2b5")[:1])),
         ("invalid", "error")),
        # rotate 180 again: reasoning that never closes (model length), then floats instead of ints
        (line("6150a2bd", 1, "<think>\nThe examples look like a rotation. Let me check every cell of example 1",
              stop_reason="model_length"), ("invalid", "no_program")),
        (line("6150a2bd", 2, answer("Rotate by 180 degrees.", FLOATS, None)), ("invalid", "ok")),
        # rotate 90 counter-clockwise: a decoy program inside the reasoning block is ignored
        (line("ed36ccf7", 1, "<think>\nMaybe a transpose?\n```python\ndef transform(grid):\n    return grid\n```\n"
                             "No: a quarter turn to the left.\n</think>\n"
              + answer("A quarter turn counter-clockwise.", ROT90_CCW, None)), ("executed_program", "ok")),
        (line("ed36ccf7", 2, answer("Turn the grid left.", ROT90_CCW, out("ed36ccf7"))), ("executed_program", "ok")),
    ]


def check(path: Path, expected: dict[tuple[str, int], tuple[str, str]]) -> None:
    dataset = load_dataset(DATASET).select(list(dict.fromkeys(t for t, _ in expected)))
    responses = read_responses(path, dataset, 2)
    with LocalExecutor(timeout=1.0) as executor:
        records = score_attempts(dataset, responses, executor, 2)
    wrong = [f"{r.task_id} attempt {r.attempt}: got {(r.source, r.program_status)}, "
             f"want {expected[(r.task_id, r.attempt)]}"
             for r in records if (r.source, r.program_status) != expected[(r.task_id, r.attempt)]]
    if wrong:
        sys.exit("demo responses do not score as intended:\n  " + "\n  ".join(wrong))
    print(f"{path.name}: {len(records)} attempts over {len(dataset.tasks)} tasks score as intended")
    print("task ids: " + ",".join(dataset.tasks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the existing file, do not rewrite it")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    built = cases(load_dataset(DATASET).tasks)
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(obj) + "\n" for obj, _ in built), encoding="utf-8")
    check(args.out, {(obj["task_id"], obj["attempt"]): want for obj, want in built})


if __name__ == "__main__":
    main()
