"""lm-eval's own evaluator on the arc_prog tasks, with a registered LM that replays a recorded
responses file: every metric equals `rps-evals score` on the same file, `rps-evals report` turns
lm-eval's output into the same run directory, and the group pools exactly what it claims to."""

from __future__ import annotations

import json

import pytest
from lmeval_support import (
    SCRIPTED_MODEL,
    TASKS_DIR,
    lookup_program,
    pick_tasks,
    recorded_rows,
    register_scripted_model,
    write_responses,
)

from inspect_support import scores_of
from rps_evals.cli import main as rps_main
from rps_evals.prompt import prompt_hash
from rps_evals.data import load_dataset
from rps_evals.lmeval import API_ERROR_TEXT, RECORDS_KEY
from rps_evals.reports.readers import read_lmeval_output
from rps_evals.scoring import METRICS, AttemptRecord, metric_units

TASK, DATASET, N_DOCS, TIMEOUT = "arc1_prog_training", "arc1:training", 7, 4.0
FILTER = "all_attempts"


def _manager(sandbox="local", **metadata):
    """Our tasks only (lm-eval's 8 s index of its own tasks is not needed); sandbox None: the default."""
    from lm_eval.tasks import TaskManager

    sandbox = {"rps_sandbox": sandbox} if sandbox else {}
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                       metadata={**sandbox, "rps_exec_timeout": TIMEOUT, **metadata})


def _save_like_the_cli(results: dict, out_dir) -> None:
    """What `lm_eval --output_path OUT --log_samples` writes after simple_evaluate."""
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out_dir))
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    results["samples"] = samples


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_qwen3):
    """The responses file, its max_gen_toks, and `rps-evals score` on it (local sandbox)."""
    from transformers import AutoTokenizer

    tmp = tmp_path_factory.mktemp("lmeval-scripted")
    indices, tasks = pick_tasks(load_dataset(DATASET))
    responses = tmp / "responses.jsonl"
    limit = write_responses(responses, recorded_rows(tasks), AutoTokenizer.from_pretrained(tiny_qwen3))
    core = tmp / "core"
    in_doc_order = [list(load_dataset(DATASET).tasks)[i] for i in indices]  # lm-eval's order
    assert rps_main(["score", "--dataset", DATASET, "--responses", str(responses), "--out", str(core),
                     "--sandbox", "local", "--timeout", str(TIMEOUT), "--task-ids", *in_doc_order]) == 0
    return {"responses": responses, "limit": limit, "core": core, "tmp": tmp, "tokenizer": str(tiny_qwen3),
            "indices": indices}


def _evaluate(recorded, sandbox="local", **kwargs):
    import lm_eval

    register_scripted_model()
    return lm_eval.simple_evaluate(
        model=SCRIPTED_MODEL, model_args=f"responses={recorded['responses']}", tasks=[TASK],
        samples={TASK: recorded["indices"]},  # seven chosen docs, two with several test inputs
        task_manager=_manager(sandbox, rps_tokenizer=recorded["tokenizer"], rps_api_backend=True),
        gen_kwargs={"max_gen_toks": recorded["limit"]}, confirm_run_unsafe_code=True,
        log_samples=True, bootstrap_iters=0, **kwargs)


@pytest.fixture(scope="module")
def lmeval_run(recorded):
    results = _evaluate(recorded)
    _save_like_the_cli(results, recorded["tmp"] / "lmeval-out")
    return results


def _core(recorded):
    return json.loads((recorded["core"] / "results.json").read_text())


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        data = json.loads(line)
        if data["api_error"] is not None:  # the core keeps the file's text, lm-eval knows only that it failed
            data["api_error"] = "failed"
        out.append(data)
    return out


def test_every_metric_equals_rps_evals_score(recorded, lmeval_run):
    core = _core(recorded)
    got = lmeval_run["results"][TASK]
    samples = lmeval_run["samples"][TASK]
    assert len(samples) == N_DOCS
    for name in METRICS:
        pooled = (sum(s[name][0] for s in samples), sum(s[name][1] for s in samples))
        assert pooled == (core["metrics"][name]["n"], core["metrics"][name]["of"]), name
        assert got[f"{name},{FILTER}"] == core["metrics"][name]["rate"], name
    assert got[f"arc_prize_score,{FILTER}"] == pytest.approx(core["arc_prize_score"], abs=1e-12)
    assert got[f"stop_reason_unknown,{FILTER}"] == 0 and core["stop_reason_unknown"] == 0
    assert got[f"attempt_records,{FILTER}"] == 2 * N_DOCS
    # the file really exercises every path (so equality above means something)
    m = {name: core["metrics"][name]["n"] for name in METRICS}
    assert m["api_errors"] == 1 and m["token_limit_hits"] == 1 and m["program_timeouts"] == 1
    assert m["program_errors"] >= 1 and m["json_fallback_attempts"] >= 2 and m["train_verified_programs"] >= 1
    assert m["task_solves"] >= 2 and m["invalid_attempts"] >= 4
    assert core["metrics"]["test_output_exact"]["of"] > N_DOCS  # test-output units really vary per doc


def test_logged_records_are_the_cores_records(recorded, lmeval_run):
    logged = [dict(r) for s in lmeval_run["samples"][TASK] for r in s[RECORDS_KEY]]
    assert all("completion" not in r for r in logged)  # lm-eval logs the text already
    assert [r["api_error"] for r in logged if r["api_error"]] == [API_ERROR_TEXT]
    for r in logged:
        r["api_error"] = "failed" if r["api_error"] else None
    core = [{k: v for k, v in r.items() if k != "completion"} for r in _records(recorded["core"] / "attempts.jsonl")]
    assert logged == core  # same records, same (dataset) order


@pytest.mark.parametrize("which", ["folder", "results", "samples"])
def test_report_on_lmeval_output_writes_the_same_run(recorded, lmeval_run, tmp_path, which):
    out = recorded["tmp"] / "lmeval-out"
    results_file = next(out.rglob("results_*.json"))
    target = {"folder": out, "results": results_file, "samples": next(out.rglob(f"samples_{TASK}_*.jsonl"))}[which]
    assert rps_main(["report", str(target), "--out", str(tmp_path / "run")]) == 0
    got, want = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "run", recorded["core"]))
    assert scores_of(got) == scores_of(want)
    assert got["usage"]["output_tokens_per_attempt"] == want["usage"]["output_tokens_per_attempt"] is not None
    block = got["provenance"]  # from the task config lm-eval wrote beside its results
    assert (block["dataset"], block["k"], block["exec_timeout"], block["program_synthesis"]) == \
        (DATASET, 2, TIMEOUT, "allowed")
    assert block["prompt_hash"] == prompt_hash("allowed") and block["sandbox"] == want["provenance"]["sandbox"]
    assert block["generation"]["max_tokens"] == recorded["limit"]
    assert got["usage"]["wall_time_s"] is not None
    assert _records(tmp_path / "run" / "attempts.jsonl") == _records(recorded["core"] / "attempts.jsonl")
    assert (tmp_path / "run" / "submission.json").read_text() == (recorded["core"] / "submission.json").read_text()


def test_predict_only_output_is_scored_by_report(recorded, tmp_path):
    """--predict_only logs text without metrics: report scores it with the run's settings."""
    results = _evaluate(recorded, predict_only=True)
    assert RECORDS_KEY not in results["samples"][TASK][0]
    _save_like_the_cli(results, tmp_path / "out")
    dataset, records, k, options = read_lmeval_output(tmp_path / "out")
    assert (dataset.name, len(dataset.tasks), k) == (DATASET, N_DOCS, 2)
    assert rps_main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "run")]) == 0
    assert scores_of(json.loads((tmp_path / "run" / "results.json").read_text())) == scores_of(_core(recorded))


@pytest.mark.docker
def test_the_default_sandbox_is_docker_and_scores_the_same(recorded, monkeypatch):
    from rps_evals.execution import shared_executor

    monkeypatch.delenv("RPS_SANDBOX", raising=False)
    results = _evaluate(recorded, sandbox=None)
    assert type(shared_executor(None, TIMEOUT)).__name__ == "DockerExecutor"
    core = _core(recorded)
    for name in METRICS:
        assert results["results"][TASK][f"{name},{FILTER}"] == core["metrics"][name]["rate"], name


def test_missing_confirm_run_unsafe_code_is_refused_before_generation(recorded):
    import lm_eval
    from lm_eval.api.registry import get_model

    register_scripted_model()
    lm = get_model(SCRIPTED_MODEL)(responses=str(recorded["responses"]))
    with pytest.raises(ValueError, match="marked as unsafe.*confirm_run_unsafe_code"):
        lm_eval.simple_evaluate(model=lm, tasks=[TASK], limit=1, task_manager=_manager())
    assert lm.calls == 0


def test_group_pools_what_it_lists_and_leaves_out_test_output_counts(tmp_path):
    """arc_prog = arc1_prog + arc2_prog: its numbers are the pooled n/of over both splits."""
    import lm_eval

    register_scripted_model()
    rows = []
    for name in ("arc1:evaluation", "arc2:evaluation"):
        for i, task in enumerate(list(load_dataset(name).tasks.values())[:3]):
            rows.append({"task_id": task.task_id, "attempt": 1, "completion": lookup_program(task) if i else "no"})
            identity = "```python\ndef transform(g):\n    return g\n```"
            rows.append({"task_id": task.task_id, "attempt": 2, "completion": identity if i != 1 else None})
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = lm_eval.simple_evaluate(
        model=SCRIPTED_MODEL, model_args=f"responses={responses}", tasks=["arc_prog"], limit=3,
        task_manager=_manager(rps_api_backend=True), confirm_run_unsafe_code=True, log_samples=True,
        bootstrap_iters=0)
    group = results["groups"]["arc_prog"]
    records = [AttemptRecord.from_dict(r) for task in ("arc1_prog", "arc2_prog")
               for s in results["samples"][task] for r in s[RECORDS_KEY]]
    units = metric_units(records, 2)
    listed = [m for m in METRICS if f"{m},{FILTER}" in group]
    assert set(METRICS) - set(listed) == {"test_output_exact", "valid_output_attempts"}
    for name in listed:
        n, of = sum(units[name].values()), len(units[name])
        assert group[f"{name},{FILTER}"] == pytest.approx(n / of, abs=1e-12), name
    assert group[f"api_errors,{FILTER}"] == pytest.approx(2 / 12)
    assert group[f"task_solves,{FILTER}"] > 0


def test_repeats_is_the_number_of_attempts(tmp_path):
    """A task overriding `repeats: 3` scores three attempts; the third feeds pass@k only."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    register_scripted_model()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "k3.yaml").write_text(
        f"include: {TASKS_DIR / 'arc_prog' / 'arc1_prog_training.yaml'}\ntask: arc1_prog_k3\nrepeats: 3\n")
    tasks = list(load_dataset(DATASET).tasks.values())[:2]
    rows = [{"task_id": t.task_id, "attempt": a, "completion": lookup_program(t) if a == 3 else "no idea"}
            for t in tasks for a in (1, 2, 3)]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manager = TaskManager(include_path=[str(TASKS_DIR), str(tmp_path / "tasks")], include_defaults=False,
                          metadata={"rps_sandbox": "local"})
    results = lm_eval.simple_evaluate(
        model=SCRIPTED_MODEL, model_args=f"responses={responses}", tasks=["arc1_prog_k3"], limit=2,
        task_manager=manager, confirm_run_unsafe_code=True, log_samples=True, bootstrap_iters=0)
    got = results["results"]["arc1_prog_k3"]
    assert got[f"attempt_records,{FILTER}"] == 6
    assert got[f"task_solves,{FILTER}"] == 0.0 and got[f"oracle_task_solves,{FILTER}"] == 1.0
    assert got[f"attempts_from_executed_programs,{FILTER}"] == pytest.approx(1 / 3)
    _save_like_the_cli(results, tmp_path / "out")
    dataset, records, k, _ = read_lmeval_output(tmp_path / "out")
    assert (k, len(records), len(dataset.tasks)) == (3, 6, 2)
