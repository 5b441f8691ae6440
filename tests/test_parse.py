"""The parsing and grid rules, one hand-made case each."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import re

from rps_evals.parse import (as_grid, extract_json_predictions, extract_program, fenced_blocks, parse_response,
                              strip_reasoning)

PROGRAM_A = "def transform(grid):\n    return grid\n"
PROGRAM_B = "def transform(grid):\n    return [r[::-1] for r in grid]\n"
DRAFT = "def transform(grid):\n    # first try\n    return grid\n"


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


def test_lone_closing_think_ends_reasoning_begun_in_the_prompt():
    """Red-team finding 8: DeepSeek-R1/QwQ templates put <think> in the prompt, so the completion has
    only </think>: what comes before it is reasoning, its draft program is not the answer."""
    text = f"Let me try:\n```python\n{DRAFT}```\nhmm no.\n</think>\nI cannot solve it."
    assert strip_reasoning(text) == "\nI cannot solve it."
    assert parse_response(text, 1) == parse_response("", 1)
    assert parse_response(f"draft ```python\n{DRAFT}```</think>\n```python\n{PROGRAM_A}```", 1).program == PROGRAM_A


def test_think_tags_in_other_spellings_and_nested():
    """Finding 8's relatives: <Think> and <think > are tags; a <think> inside an open one is part of it
    and the first </think> closes both, so a later lone </think> ends the rest of the reasoning."""
    assert parse_response(f"<Think>\n```python\n{DRAFT}```\nhmm", 1).program is None
    assert parse_response(f"<think >\n```python\n{DRAFT}```\n</think>\nnone", 1).program is None
    assert strip_reasoning("<THINK>a</ Think >b") == "b"
    nested = f"<think><think>x</think>\n```python\n{DRAFT}```\n</think>\nNo answer."
    assert strip_reasoning(nested) == "\nNo answer."
    assert parse_response(nested, 1).program is None


def test_closed_think_draft_then_the_real_program():
    text = f"<think>\n```python\n{DRAFT}```\n</think>\n```python\n{PROGRAM_B}```\n"
    assert parse_response(text, 1).program == PROGRAM_B
    assert parse_response(f"```python\n{PROGRAM_B}```\n<think>\nmore", 1).program == PROGRAM_B


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


def test_earlier_open_block_then_a_final_block_opened_by_a_bare_fence():
    """Red-team finding 2: one unbalanced bare fence must not shift every pair after it. Read back
    from the last closing fence: the bare fence before the program opens it (code follows it)."""
    text = f"Here:\n```python\n{DRAFT}\nActually, let me fix that.\n```\n{PROGRAM_B}```\n"
    assert extract_program(text) == PROGRAM_B
    assert fenced_blocks(text) == [("python", DRAFT), ("", PROGRAM_B)]  # the open piece, without its prose


def test_doubled_closing_fence_then_a_bare_fenced_final_block():
    """Finding 2: a bare fence followed by prose closes (a stray one changes nothing)."""
    text = f"```python\n{DRAFT}```\n```\nNow the improved version:\n```\n{PROGRAM_B}```\n"
    assert extract_program(text) == PROGRAM_B
    assert fenced_blocks(text) == [("python", DRAFT), ("", PROGRAM_B)]


def test_program_left_open_before_its_labelled_json_answer():
    """Red-team finding 3: the label before the JSON fence is prose, not the end of the program."""
    for fence in ("```json", "```"):
        text = f"```python\n{PROGRAM_B}\nPredicted test outputs:\n{fence}\n[[1, 2]]\n```\n"
        parsed = parse_response(text, 1)
        assert parsed.program == PROGRAM_B, fence
        assert parsed.json_predictions == [[[1, 2]]], fence


def test_fence_glued_to_one_word_closes_the_block():
    """Red-team finding 4: ```Done, ```Output are prose glued to a closing fence, not languages."""
    assert extract_program(f"```python\n{PROGRAM_B}```Done\n") == PROGRAM_B
    assert extract_program(f"```python\n{PROGRAM_B}```Explanation.\nIt reverses rows.\n") == PROGRAM_B
    parsed = parse_response(f"```python\n{PROGRAM_B}```Output\nPredicted test outputs:\n[[1]]", 1)
    assert parsed.program == PROGRAM_B and parsed.json_predictions == [[[1]]]
    usage = f"```python\n{PROGRAM_B}```Usage\n```python\nprint(transform([[1]]))\n```\n"
    assert extract_program(usage) == PROGRAM_B


def test_fences_indented_in_a_list_item_lose_their_indentation():
    """Red-team finding 6 (CommonMark): the fence's indentation is removed from every line of the
    block; a block whose lines do not all carry it is read as it is."""
    indented = "".join(f"   {line}\n" for line in PROGRAM_B.splitlines())
    assert extract_program(f"1. Code:\n   ```python\n{indented}   ```\n") == PROGRAM_B
    assert extract_program(f"\t```python\n{PROGRAM_B}\t```\n") == PROGRAM_B  # tab-indented fences
    assert extract_program("\t```python\n\tdef transform(grid):\n\t    return grid\n\t```\n") == PROGRAM_A


def test_closing_fence_is_at_least_as_long_as_the_opening_one():
    """Red-team finding 7 (CommonMark): a ```` block holds ``` lines (here in a string)."""
    program = "def transform(grid):\n    s = \'\'\'\n```\n\'\'\'\n    return [r[::-1] for r in grid]\n"
    assert extract_program(f"````python\n{program}````\n") == program
    assert extract_program(f"````python\n{program}```\n") is None  # never closed: the ``` is inside
    assert extract_program(f"```python\n{PROGRAM_A}````\n") == PROGRAM_A  # a longer fence closes



def test_a_fence_line_acts_at_any_indentation():
    """Our reading: a closing fence indented with the code still closes the block, as a person reads
    it (CommonMark would not close it four columns deeper). The price: a ``` line in an indented
    docstring ends the block there."""
    assert extract_program(f"```python\n{PROGRAM_B}    ```\n") == PROGRAM_B
    docstring = 'def transform(grid):\n    """Example:\n    ```\n    >>> transform([[1]])\n    ```\n    """\n'
    assert extract_program(f"```python\n{docstring}    return grid\n```\n") == 'def transform(grid):\n    """Example:\n'


def test_info_string_first_word_is_the_language():
    """Red-team finding 9 (CommonMark): attributes after the language, {python} (Quarto/Pandoc)."""
    for info in ('python title="sol.py"', "Python 3", "{python}", "{.python}", "PYTHON", " python ", "py3",
                 "python```"):
        assert extract_program(f"```{info}\n{PROGRAM_B}```\n") == PROGRAM_B, info
    assert extract_program(f"```pythonic\n{PROGRAM_B}```\n") is None


def test_invisible_characters_and_line_endings_a_person_does_not_see():
    """Red-team finding 10: a BOM, NBSP or zero-width space before a fence; CRLF, a lone CR and
    trailing spaces end lines. The program comes back with plain newlines."""
    for before in ("\ufeff", "\u00a0\u00a0", "\u200b"):
        assert extract_program(f"{before}```python\n{PROGRAM_B}{before}```\n") == PROGRAM_B, repr(before)
    for newline in ("\r\n", "\r"):
        text = f"```python\n{PROGRAM_B}```\n".replace("\n", newline)
        assert extract_program(text) == PROGRAM_B, repr(newline)
    assert extract_program(f"```python  \r\n{PROGRAM_B}```  \r\n") == PROGRAM_B


def test_transform_is_defined_by_a_def_line_not_a_mention():
    """Red-team finding 11: a comment naming `def transform(` defines nothing; `def transform (` does."""
    text = f"```python\n{PROGRAM_B}```\n```python\n# def transform(grid) is above\nprint(transform([[1,2]]))\n```\n"
    assert extract_program(text) == PROGRAM_B
    spaced = "def transform (grid):\n    return grid\n"
    assert extract_program(f"```python\n{spaced}```\n") == spaced


def test_blocks_a_person_reads_as_the_rule_says():
    """Behaviours the red team checked and found right, pinned."""
    broken = "def transform(grid):\n    return grid[\n"
    assert extract_program(f"```python\n{PROGRAM_B}```\nRevised:\n```python\n{broken}```\n") == broken
    assert extract_program(f"```python\n{PROGRAM_B}```\n```python\nprint(transform([[1,2]]))\n```\n") == PROGRAM_B
    assert extract_program(f"```json\n[[1]]\n```python\n{PROGRAM_B}```\n") == PROGRAM_B
    assert extract_program(f"```python\n{DRAFT}\nhmm\n```python\n{PROGRAM_B}```\n") == PROGRAM_B
    assert extract_program(f"```PYTHON\n{PROGRAM_B}```\n") == PROGRAM_B
    assert extract_program(f"```python\r\n{PROGRAM_B.replace(chr(10), chr(13) + chr(10))}```\r\n") == PROGRAM_B
    assert extract_program(f"Use ```python blocks.\n```python\n{PROGRAM_B}```\n") == PROGRAM_B
    # SCORING.md names backtick fences only: tildes and full-width backticks make no block
    assert extract_program(f"~~~python\n{PROGRAM_B}~~~\n") is None
    assert extract_program(f"\uff40\uff40\uff40python\n{PROGRAM_B}\uff40\uff40\uff40\n") is None


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


def test_bolded_or_quoted_label():
    """Red-team finding 5: markdown emphasis closing the label is skipped, as a person reads it."""
    grid = [[1, 2], [3, 4]]
    assert extract_json_predictions("**Predicted test outputs:**\n```json\n[[1, 2], [3, 4]]\n```\n", 1) == [grid]
    assert extract_json_predictions("**Predicted test outputs:** [[1,2],[3,4]]", 1) == [grid]
    assert extract_json_predictions("__Predicted test outputs:__ [[1,2],[3,4]]", 1) == [grid]
    assert extract_json_predictions("`Predicted test outputs:`\n[[1,2],[3,4]]", 1) == [grid]
    assert extract_json_predictions("Predicted test outputs: ```json [[1, 2], [3, 4]] ```", 1) == [grid]


def test_json_fence_variants():
    """Red-team finding 12: longer fences, tildes, jsonc/json5 labels, a BOM before the JSON."""
    grid = [[1, 2], [3, 4]]
    for fence, label in (("````", "json"), ("~~~", "json"), ("```", "jsonc"), ("```", "json5"), ("```", "JSON"),
                         ("```", "")):
        text = f"Predicted test outputs:\n{fence}{label}\n[[1, 2], [3, 4]]\n{fence}\n"
        assert extract_json_predictions(text, 1) == [grid], fence + label
    assert extract_json_predictions("Predicted test outputs:\n\ufeff[[1, 2], [3, 4]]", 1) == [grid]
    assert extract_json_predictions("Predicted test outputs:\n```json\n\ufeff[[1, 2], [3, 4]]\n```", 1) == [grid]
    assert extract_json_predictions("Predicted test outputs:\n```json\n[[1, 2], [3, 4]]\n", 1) == [grid]  # left open
    assert extract_json_predictions("Predicted test outputs:\r\n```json\r\n[[1, 2],\r\n [3, 4]]\r\n```\r\n", 1) == [grid]
    assert extract_json_predictions("Predicted test outputs:\n```python\n[[1, 2], [3, 4]]\n```", 1) == [None]


@pytest.mark.parametrize("value", [
    "[[NaN, 2], [3, 4]]", "[[true, false], [3, 4]]", "[[1.0, 2], [3, 4]]", "[[1e400]]", "[[1, 2], [3]]",
    str([[1]] * 31), "[]", "[[]]", '[["1", "2"]]', '{"output": [[1]]}', "[[1, 2], [3, 4],]", "[[" + "9" * 5000 + "]]",
])
def test_json_values_that_are_no_grid(value):
    assert extract_json_predictions(f"Predicted test outputs:\n{value}", 1) == [None]


def test_json_edge_values_read_as_a_person_would():
    assert extract_json_predictions("Predicted test outputs:\n[[-0, 2], [3, 4]]", 1) == [[[0, 2], [3, 4]]]
    assert extract_json_predictions("Predicted test outputs:\n" + str([[1] * 30] * 30), 1) == [[[1] * 30] * 30]
    deep = "Predicted test outputs:\n" + "[" * 100_000 + "]" * 100_000
    assert extract_json_predictions(deep, 1) == [None]  # no RecursionError
    assert extract_json_predictions("Predicted test outputs:\n[[1, 2], [3, 4]]\nWait.\nPredicted test outputs:\n", 1) == [None]
    assert parse_response("<think>Predicted test outputs:\n[[1]]</think>none", 1).json_predictions == [None]


# --- the parser never raises -------------------------------------------------------------------
_fragments = st.sampled_from([
    "<think>", "</think>", "```", "```python\n", "```json\n", "\n", "def transform(", "grid):",
    "Predicted test outputs:", "[", "]", "[[", "]]", ",", "1", "1.0", "true", "null", "{", "}", '"',
    "[" * 500, "x", "```Final answer:\n", "```json\n", "  ```py\n", "<think>x</think>",
    "````python\n", "````", "```Done\n", "\ufeff```py\n", "   ", "Actually:\n", "\r", "<Think>",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=20)), max_size=40), st.integers(1, 4))
def test_parser_never_raises_on_fragments(parts, m):
    parsed = parse_response("".join(parts), m)
    assert len(parsed.json_predictions) == m
    if parsed.program is not None:  # every fence line acts, so none is ever inside a program...
        assert "def transform(" in parsed.program
        inner = [len(m) for m in re.findall(r"(?m)^[ \t]*(`{3,})", parsed.program)]
        # ...except a shorter one inside a block opened by a longer fence
        assert not inner or re.search(rf"(?m)^[ \t]*`{{{max(inner) + 1},}}", "".join(parts))


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


def test_split_reasoning_gives_the_pieces_strip_reasoning_removes():
    from rps_evals.parse import split_reasoning

    assert split_reasoning("a<think>b</think>c<think>d") == (["b", "d"], "ac")
    assert split_reasoning("prompt-opened</think>x<think>y</think>z") == (["prompt-opened", "y"], "xz")
    assert split_reasoning("no tags") == ([], "no tags")
    text = "p</think>q<think>r"
    assert strip_reasoning(text) == split_reasoning(text)[1] == "q"
