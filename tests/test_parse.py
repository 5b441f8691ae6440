"""The parsing and grid rules, one hand-made case each."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rps_evals.parse import as_grid, extract_json_predictions, extract_program, parse_response, strip_reasoning

PROGRAM_A = "def transform(grid):\n    return grid\n"
PROGRAM_B = "def transform(grid):\n    return [r[::-1] for r in grid]\n"


# --- strict grids --------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ([[1, 2], [3, 4]], [[1, 2], [3, 4]]),
    (((0, 9),), [[0, 9]]),  # tuples are converted
    (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),  # numpy integer array
    (np.array([[1, 2]], dtype=np.uint8), [[1, 2]]),
    ([[np.int64(3)]], [[3]]),  # numpy integer scalars
    ([[0] * 30] * 30, [[0] * 30] * 30),  # the largest grid
])
def test_valid_grids(value, expected):
    assert as_grid(value) == expected


@pytest.mark.parametrize("value", [
    [[True, False]],  # bool is not int
    np.array([[True, False]]),
    [[1.0, 2.0]],  # float, even integral
    np.array([[1.0]]),
    [["1"]],
    [[None]],
    [[1, 2], [3]],  # ragged
    [],  # empty
    [[]],
    [[10]],  # out of range
    [[-1]],
    [[0] * 31],  # 31 wide
    [[0]] * 31,  # 31 tall
    [[0] * 31] * 31,
    "[[1]]",
    None,
    {"a": 1},
    [1, 2],
])
def test_invalid_grids(value):
    assert as_grid(value) is None


# --- reasoning blocks ------------------------------------------------------------------------
def test_think_blocks_removed_before_parsing():
    text = f"<think>```python\n{PROGRAM_B}```</think>\n```python\n{PROGRAM_A}```"
    assert extract_program(strip_reasoning(text)) == PROGRAM_A


def test_unclosed_think_swallows_the_rest():
    text = f"<think>I will write\n```python\n{PROGRAM_A}```\nPredicted test outputs: [[1]]"
    parsed = parse_response(text, 1)
    assert parsed.program is None
    assert parsed.json_predictions == [None]


def test_closed_then_unclosed_think():
    text = f"<think>a</think>```python\n{PROGRAM_A}```\n<think>more ```python\n{PROGRAM_B}```"
    assert parse_response(text, 1).program == PROGRAM_A


# --- program extraction ----------------------------------------------------------------------
def test_last_transform_block_wins_and_others_are_ignored():
    text = (f"```python\n{PROGRAM_A}```\n```python\nprint('helper')\n```\n"
            f"```py\n{PROGRAM_B}```\n```json\n[[1]]\n```")
    assert extract_program(text) == PROGRAM_B


def test_unlabelled_block_counts_other_languages_do_not():
    assert extract_program(f"```\n{PROGRAM_A}```") == PROGRAM_A
    assert extract_program(f"```javascript\n{PROGRAM_A}```") is None


def test_open_fence_is_not_a_block():
    text = f"```python\n{PROGRAM_A}```\n```python\n{PROGRAM_B}"  # truncated second block
    assert extract_program(text) == PROGRAM_A
    assert extract_program(f"```python\n{PROGRAM_B}") is None


def test_block_without_transform_is_no_program():
    assert parse_response("```python\ndef solve(g):\n    return g\n```", 1).program is None


def test_earlier_unclosed_block_then_final_closed_block():
    """Issue 10: an earlier block left open, then `Final answer:` and a closed block. Reading back from
    the last closing fence, the program is the final block, without the prose before it."""
    text = ("Let me try.\n```python\ndef transform(grid):\n    # first idea\n    return grid\n\n"
            f"Hmm, that is wrong. Final answer:\n```python\n{PROGRAM_B}```\n")
    assert extract_program(text) == PROGRAM_B


def test_fence_glued_to_the_next_label_closes_the_block():
    """Issue 10: every block closed by a fence glued to the next label (```Final answer:)."""
    text = (f"```python\n{PROGRAM_A}```Final answer:\n```python\n{PROGRAM_B}```Predicted test outputs:\n"
            "```json\n[[1, 2]]\n```")
    parsed = parse_response(text, 1)
    assert parsed.program == PROGRAM_B
    assert parsed.json_predictions == [[[1, 2]]]
    assert extract_program(f"```python\n{PROGRAM_A}```Done, that is all.") == PROGRAM_A


def test_glued_fence_with_nothing_open_is_prose():
    # the glued line neither opens a block nor pairs with the bare fence after it
    text = f"```Final answer:\n```python\n{PROGRAM_A}```"
    assert extract_program(text) == PROGRAM_A


def test_unclosed_program_split_at_a_json_fence():
    """A block whose text contains another opening fence line is split there: the program left open
    just before a closed ```json block is still the program."""
    text = f"```python\n{PROGRAM_A}```json\n[[1]]\n```\n"
    assert extract_program(text) == PROGRAM_A
    assert extract_program(f"```python\n{PROGRAM_A}```json\n[[1]]\n") is None  # never closed


def test_unclosed_program_followed_by_another_python_block_is_dropped():
    text = f"```python\n{PROGRAM_A}\n```python\nprint('no transform here')\n```"
    assert extract_program(text) is None


def test_language_names_in_info_strings():
    assert extract_program(f"```Python\n{PROGRAM_A}```") == PROGRAM_A
    assert extract_program(f"```python3\n{PROGRAM_A}```") == PROGRAM_A
    assert extract_program(f"```python3.11\n{PROGRAM_A}```") == PROGRAM_A
    assert extract_program(f"```pyth\n{PROGRAM_A}```") is None
    assert extract_program(f"  ``` py \n{PROGRAM_A}  ```\n") == PROGRAM_A
    assert extract_program(f"````python\n{PROGRAM_A}````") == PROGRAM_A


GRID_LST_NUMPY = (
    "import numpy as np\n\n"
    "def transform(grid_lst: list[list[int]]) -> list[list[int]]:\n"
    "    grid = np.array(grid_lst)\n"
    "    return np.rot90(grid, 2)\n"
)


def test_typed_grid_lst_signature_returning_a_numpy_array_runs_and_gives_a_grid():
    from rps_evals.execution import Program, get_executor

    text = f"Reasoning: rotate by 180 degrees.\n\nPython program:\n```python\n{GRID_LST_NUMPY}```\n"
    parsed = parse_response(text, 1)
    assert parsed.program == GRID_LST_NUMPY
    with get_executor("local", timeout=5) as executor:
        [execution] = executor.run([Program(parsed.program, [[[1, 2], [3, 4]]])])
    assert execution.status == "ok"
    assert as_grid(execution.test_outputs[0]) == [[4, 3], [2, 1]]


def test_150000_characters_of_repeated_text_parse_correctly():
    """Degenerate repetitions, each 150,000 characters. The parser is linear in the text (the old
    lazy regexes rescanned to the end per repetition: 27 s for the first case);
    benchmarks/parse_speed.py measures it."""
    opened = ("```python\ndef transform(grid):\n" * 5000)[:150_000]
    assert parse_response(opened, 1).program is None
    assert parse_response(opened + f"\n```python\n{PROGRAM_B}```", 1).program == PROGRAM_B
    thinking = ("<think>hmm, let me reconsider " * 6000)[:150_000]
    # the first <think> runs to the one </think>: the whole repetition is reasoning, the program is read
    assert parse_response(thinking + f"</think>```python\n{PROGRAM_A}```", 1).program == PROGRAM_A
    assert parse_response(thinking, 1) == parse_response("", 1)
    fences = "```\n" * 37_500
    assert parse_response(fences, 1).program is None
    labels = ("Predicted test outputs: [[" * 6000)[:150_000]
    assert parse_response(labels, 2).json_predictions == [None, None]


# --- JSON fallback ----------------------------------------------------------------------------
def test_single_grid_allowed_when_m_is_1():
    assert extract_json_predictions("Predicted test outputs:\n[[1, 2]]", 1) == [[[1, 2]]]
    assert extract_json_predictions("Predicted test outputs:\n[[[1, 2]]]", 1) == [[[1, 2]]]


def test_single_grid_not_allowed_when_m_is_2():
    assert extract_json_predictions("Predicted test outputs:\n[[1, 2]]", 2) == [None, None]


def test_list_of_m_grids_each_validated_separately():
    text = "Predicted test outputs:\n```json\n[[[1]], [[1.0]], [[3, 3]]]\n```"
    assert extract_json_predictions(text, 3) == [[[1]], None, [[3, 3]]]


def test_wrong_count_gives_nothing():
    assert extract_json_predictions("Predicted test outputs: [[[1]], [[2]]]", 3) == [None] * 3


def test_last_label_is_used_and_trailing_prose_is_ignored():
    text = "Predicted test outputs: [[9]]\nno wait\nPredicted test outputs:\n[[4]]\nDone."
    assert extract_json_predictions(text, 1) == [[[4]]]


def test_no_label_or_bad_json_gives_nothing():
    assert extract_json_predictions("[[1]]", 1) == [None]
    assert extract_json_predictions("Predicted test outputs: [[1, 2]", 1) == [None]
    assert extract_json_predictions("Predicted test outputs:", 1) == [None]


def test_empty_and_none_completions():
    assert parse_response(None, 2).json_predictions == [None, None]
    assert parse_response("", 1).program is None


# --- the parser never raises -------------------------------------------------------------------
_fragments = st.sampled_from([
    "<think>", "</think>", "```", "```python\n", "```json\n", "\n", "def transform(", "grid):",
    "Predicted test outputs:", "[", "]", "[[", "]]", ",", "1", "1.0", "true", "null", "{", "}", '"',
    "[" * 500, "x", "```Final answer:\n", "```json\n", "  ```py\n", "<think>x</think>",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=20)), max_size=40), st.integers(1, 4))
def test_parser_never_raises_on_fragments(parts, m):
    parsed = parse_response("".join(parts), m)
    assert len(parsed.json_predictions) == m
    if parsed.program is not None:  # every fence line acts, so none is ever inside a program
        assert "def transform(" in parsed.program
        assert not any(line.lstrip(" \t").startswith("```") for line in parsed.program.split("\n"))


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(1, 4))
def test_parser_never_raises_on_text(text, m):
    parsed = parse_response(text, m)
    assert parsed.program is None or "def transform(" in parsed.program


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2, 12) | st.floats() | st.text(max_size=3),
                    lambda children: st.lists(children, max_size=5), max_leaves=60))
def test_as_grid_never_raises_and_accepts_only_strict_grids(value):
    grid = as_grid(value)
    if grid is not None:
        assert 1 <= len(grid) <= 30 and len({len(r) for r in grid}) == 1
        assert all(type(c) is int and 0 <= c <= 9 for r in grid for c in r)
