"""The one prompt every front end and the DPO data builder use.

It shows all training pairs and ALL test inputs of a task and asks for the labeled answer
structure of the RPS study: `Reasoning:`, `Python program:` (a ```python block defining
`transform(grid)`), `Predicted test outputs:` (JSON). The version id is stored with every result;
change it whenever the text changes, since scores are only comparable under the same prompt.
"""

from __future__ import annotations

import json
from enum import Enum

from rps_evals.data import Task
from rps_evals.parse import Grid

PROMPT_VERSION = "arc-prog-v1"


class ProgramSynthesis(str, Enum):
    """Whether the model is told to write a program: the RPS report used `allowed`."""

    ALLOWED = "allowed"
    REQUIRED = "required"
    OFF = "off"


def format_grid(grid: Grid) -> str:
    """One row per line, as JSON lists: exact, unambiguous and easy to copy into code."""
    return "[\n" + ",\n".join(" " + json.dumps(row, separators=(", ", ": ")) for row in grid) + "\n]"


_INSTRUCTIONS = {
    ProgramSynthesis.ALLOWED: (
        "You may solve it by writing a Python program. If you do, define `def transform(grid)` that "
        "takes one input grid (a list of lists of ints 0-9) and returns the output grid; it will be "
        "run on every test input, and its outputs are used in place of your written predictions. "
        "numpy is available."
    ),
    ProgramSynthesis.REQUIRED: (
        "Solve it by writing a Python program: define `def transform(grid)` that takes one input "
        "grid (a list of lists of ints 0-9) and returns the output grid. It will be run on every "
        "test input. numpy is available."
    ),
    ProgramSynthesis.OFF: "Do not write code: work out the output grids directly.",
}

_ANSWER_FORMAT = {
    ProgramSynthesis.ALLOWED: (
        "Reasoning:\n<the rule you found and how you checked it against the examples>\n\n"
        "Python program:\n```python\ndef transform(grid):\n    ...\n```\n\n"
        "Predicted test outputs:\n```json\n[<output grid for test input 1>, ...]\n```"
    ),
    ProgramSynthesis.OFF: (
        "Reasoning:\n<the rule you found and how you checked it against the examples>\n\n"
        "Predicted test outputs:\n```json\n[<output grid for test input 1>, ...]\n```"
    ),
}
_ANSWER_FORMAT[ProgramSynthesis.REQUIRED] = _ANSWER_FORMAT[ProgramSynthesis.ALLOWED]


def build_prompt(task: Task, mode: ProgramSynthesis | str = ProgramSynthesis.ALLOWED) -> str:
    """The user message for `task` under a program-synthesis `mode`."""
    mode = ProgramSynthesis(mode)
    parts = [
        "You are solving an ARC-AGI puzzle. Each example maps an input grid to an output grid by "
        "one hidden rule. Grids are lists of rows; each cell is a color 0-9.",
        "",
    ]
    for i, (grid_in, grid_out) in enumerate(task.train, 1):
        parts += [f"Example {i} input:", format_grid(grid_in), f"Example {i} output:", format_grid(grid_out), ""]
    for j, grid_in in enumerate(task.test_inputs, 1):
        parts += [f"Test input {j}:", format_grid(grid_in), ""]
    count = task.num_tests
    parts += [
        f"Find the rule and apply it to the {count} test input{'s' if count > 1 else ''}. "
        + _INSTRUCTIONS[mode],
        "",
        "Answer in exactly this structure:",
        "",
        _ANSWER_FORMAT[mode],
        "",
        f"`Predicted test outputs` must be a JSON list of {count} grid{'s' if count > 1 else ''}, "
        "one per test input, in order.",
    ]
    return "\n".join(parts)
