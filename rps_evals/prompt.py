"""The one prompt every front end and the DPO data builder use.

It shows all training pairs and ALL test inputs of a task and asks for the labeled answer
structure of the RPS study: `Reasoning:`, `Python program:` (a ```python block defining
`transform(grid)`), `Predicted test outputs:` (JSON). Each program-synthesis mode has its own
template text and its own version id; results record both the id and the SHA-256 of the template
(`prompt_hash`), since scores are only comparable under the same prompt. Change a mode's version
whenever its text changes: tests/test_data.py pins each hash to its version.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum

from rps_evals.data import Task
from rps_evals.parse import Grid


class ProgramSynthesis(str, Enum):
    """Whether the model is told to write a program: the RPS report used `allowed`."""

    ALLOWED = "allowed"
    REQUIRED = "required"
    OFF = "off"


# One id per mode: the three texts differ, so their scores are different measurements.
PROMPT_VERSIONS = {
    ProgramSynthesis.ALLOWED: "arc-prog-v2",  # v2: names the sandbox's numpy and scipy versions
    ProgramSynthesis.REQUIRED: "arc-prog-v2-required",
    ProgramSynthesis.OFF: "arc-prog-v1-off",
}
PROMPT_VERSION = PROMPT_VERSIONS[ProgramSynthesis.ALLOWED]  # the default mode's (the RPS report's)


def format_grid(grid: Grid) -> str:
    """One row per line, as JSON lists: exact, unambiguous and easy to copy into code."""
    return "[\n" + ",\n".join(" " + json.dumps(row, separators=(", ", ": ")) for row in grid) + "\n]"


# What the sandbox has (sandbox/requirements.txt pins it; tests/test_provenance.py checks they agree).
_LIBRARIES = "Python 3.11 with numpy 2.4 and scipy 1.17 is available."

_INSTRUCTIONS = {
    ProgramSynthesis.ALLOWED: (
        "You may solve it by writing a Python program. If you do, define `def transform(grid)` that "
        "takes one input grid (a list of lists of ints 0-9) and returns the output grid; it will be "
        "run on every test input, and its outputs are used in place of your written predictions. "
        + _LIBRARIES
    ),
    ProgramSynthesis.REQUIRED: (
        "Solve it by writing a Python program: define `def transform(grid)` that takes one input "
        "grid (a list of lists of ints 0-9) and returns the output grid. It will be run on every "
        "test input. " + _LIBRARIES
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


# The template: {examples} and {tests} are filled with one _EXAMPLE / _TEST block per pair / test input.
_TEMPLATE = (
    "You are solving an ARC-AGI puzzle. Each example maps an input grid to an output grid by "
    "one hidden rule. Grids are lists of rows; each cell is a color 0-9.\n\n"
    "{examples}{tests}"
    "Find the rule and apply it to the {count} test input{s}. {instructions}\n\n"
    "Answer in exactly this structure:\n\n"
    "{answer_format}\n\n"
    "`Predicted test outputs` must be a JSON list of {count} grid{s}, one per test input, in order."
)
_EXAMPLE = "Example {i} input:\n{input}\nExample {i} output:\n{output}\n\n"
_TEST = "Test input {j}:\n{input}\n\n"


def prompt_template(mode: ProgramSynthesis | str = ProgramSynthesis.ALLOWED) -> str:
    """The exact template text of a mode (its main text, then the example and test-input blocks)."""
    mode = ProgramSynthesis(mode)
    main = _TEMPLATE.replace("{instructions}", _INSTRUCTIONS[mode]).replace("{answer_format}", _ANSWER_FORMAT[mode])
    return "\n".join((main, _EXAMPLE, _TEST))


def prompt_hash(mode: ProgramSynthesis | str = ProgramSynthesis.ALLOWED) -> str:
    """SHA-256 (hex) of the mode's template text: what `prompt_hash` in a result's provenance is."""
    return hashlib.sha256(prompt_template(mode).encode("utf-8")).hexdigest()


def prompt_version(mode: ProgramSynthesis | str = ProgramSynthesis.ALLOWED) -> str:
    return PROMPT_VERSIONS[ProgramSynthesis(mode)]


def build_prompt(task: Task, mode: ProgramSynthesis | str = ProgramSynthesis.ALLOWED) -> str:
    """The user message for `task` under a program-synthesis `mode`."""
    mode = ProgramSynthesis(mode)
    count = task.num_tests
    examples = "".join(_EXAMPLE.format(i=i, input=format_grid(grid_in), output=format_grid(grid_out))
                       for i, (grid_in, grid_out) in enumerate(task.train, 1))
    tests = "".join(_TEST.format(j=j, input=format_grid(grid_in)) for j, grid_in in enumerate(task.test_inputs, 1))
    return _TEMPLATE.format(examples=examples, tests=tests, count=count, s="s" if count > 1 else "",
                            instructions=_INSTRUCTIONS[mode], answer_format=_ANSWER_FORMAT[mode])
