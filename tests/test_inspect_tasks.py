"""The Inspect front end against the scoring core: same numbers, same run files, errors counted.

Real Inspect runs (Python API and the `inspect` CLI) with the replay model on the bundled demo
responses; programs run in the core's local runner here (the Docker sandbox has its own test).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai import eval_retry  # noqa: E402
from inspect_ai.log import EvalLog  # noqa: E402
from inspect_ai.model import ModelOutput, get_model, modelapi  # noqa: E402

from rps_evals.arc1 import arc1  # noqa: E402
from rps_evals.arc2 import arc2  # noqa: E402
from rps_evals.cli import main as rps_main  # noqa: E402
from rps_evals.inspect_eval.counts import SCORER_NAME  # noqa: E402
from rps_evals.inspect_eval.generation import AttemptMissing, RecordedAPIError, current_attempt  # noqa: E402
from rps_evals.inspect_eval.replay import ReplayAPI, demo_responses_path  # noqa: E402
from rps_evals.inspect_eval.task import TaskParameterError  # noqa: E402
from inspect_support import DEMO_IDS, ROOT, assert_same_numbers, core_score, inspect_metrics, report, scores_of  # noqa: E402



@pytest.fixture(autouse=True)
def _log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_LOG_DIR", str(tmp_path / "logs"))


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory) -> EvalLog:
    task = arc1(split="training", task_ids=",".join(DEMO_IDS), sandbox="local")
    (log,) = inspect_eval(task, model="rps/replay", display="none", log_dir=str(tmp_path_factory.mktemp("logs")))
    return log


@pytest.fixture(scope="module")
def demo_core(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("demo-core")
    return core_score(demo_responses_path(), out), out


@pytest.mark.slow
def test_python_eval_equals_core_score(demo_log, demo_core, tmp_path):
    core, core_dir = demo_core
    assert demo_log.status == "success"
    assert_same_numbers(inspect_metrics(demo_log), core)
    # the failed API call is scored, not dropped: every sample has a score
    assert len(demo_log.samples) == len(DEMO_IDS)
    assert all(SCORER_NAME in s.scores for s in demo_log.samples)
    errored = [s.id for s in demo_log.samples if s.error]
    assert errored == ["a416b8f3"]

    # `rps-evals report LOG` writes the same run directory as `rps-evals score`
    reported = report(demo_log.location, tmp_path / "run")
    assert scores_of(reported) == scores_of(core)
    for name in ("attempts.jsonl", "submission.json"):
        assert (tmp_path / "run" / name).read_text() == (core_dir / name).read_text(), name


@pytest.mark.slow
def test_cli_eval_equals_core_score(demo_core, tmp_path):
    """`inspect eval` on the registered task (entry point), `-T` parsing included."""
    core, _ = demo_core
    logs = tmp_path / "cli-logs"
    proc = subprocess.run(
        ["inspect", "eval", "rps_evals/arc1", "-T", "split=training", "-T", "task_ids=" + ",".join(DEMO_IDS),
         "-T", "sandbox=local", "--model", "rps/replay", "--log-dir", str(logs), "--display", "plain",
         "--temperature", "0.6", "--max-tokens", "1000"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log_file,) = logs.glob("*.eval")
    reported = report(str(log_file), tmp_path / "run")
    assert scores_of(reported) == scores_of(core)
    # `inspect eval` builds the task with the model known: its block names them (replay takes `n`)
    assert reported["provenance"]["model"] == "rps/replay"
    assert reported["provenance"]["generation"] == {"temperature": 0.6, "top_p": None, "top_k": None,
                                                    "max_tokens": 1000, "seed": None, "num_choices": 2}
    from inspect_ai.log import read_eval_log

    assert_same_numbers(inspect_metrics(read_eval_log(str(log_file))), core)


def test_bad_parameters_fail_before_generation():
    cases = [
        (dict(split="test"), "split must be 'training' or 'evaluation'"),
        (dict(attempts=0), "attempts must be an integer >= 1"),
        (dict(attempts="2"), "attempts must be an integer >= 1"),
        (dict(program_synthesis="maybe"), "program_synthesis must be one of allowed, required, off"),
        (dict(task_ids="3c9b0459,nosuchtask"), "task ids not in arc1:evaluation: 3c9b0459, nosuchtask"),
        (dict(exec_timeout=0), "exec_timeout must be a positive number"),
        (dict(sandbox=""), "sandbox must be docker, local or an Inspect sandbox type"),
        (dict(sandbox="local:x"), "sandbox=local takes no configuration"),
        (dict(sandbox="docker:compose.yaml"), "sandbox=docker takes no configuration"),
    ]
    for args, message in cases:
        with pytest.raises(TaskParameterError, match=message.replace("(", r"\(")):
            arc1(**args)
    with pytest.raises(TaskParameterError, match="task ids not in arc2:training"):
        arc2(split="training", task_ids=["3c9b0459x"])


def test_missing_sandbox_image_is_reported_when_the_task_is_built(monkeypatch):
    monkeypatch.setenv("RPS_EVALS_SANDBOX_IMAGE", "rps-evals-sandbox:does-not-exist")
    with pytest.raises(TaskParameterError, match="sandbox"):
        arc1(split="training", task_ids="3c9b0459")


def test_bad_parameter_on_the_cli_is_reported_without_a_run(tmp_path):
    proc = subprocess.run(
        ["inspect", "eval", "rps_evals/arc1.py", "-T", "split=training", "-T", "task_ids=nosuchtask",
         "--model", "rps/replay", "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert "task ids not in arc1:training: nosuchtask" in proc.stdout + proc.stderr
    assert not list((tmp_path / "logs").glob("*.eval"))  # no eval started, nothing generated


def test_task_ids_and_parameters_reach_the_task():
    task = arc2(split="evaluation", attempts=3, program_synthesis="required", task_ids=" 0934a4d8, 135a2760 ",
                sandbox="local")
    assert [s.id for s in task.dataset] == ["0934a4d8", "135a2760"]
    assert "Solve it by writing a Python program" in task.dataset[0].input
    assert task.metadata["rps_evals"]["attempts"] == 3
    assert task.metadata["rps_evals"]["dataset"] == "arc2:evaluation"
    assert task.score_on_error is True
    assert task.config.max_retries and task.config.timeout and task.config.attempt_timeout


def test_all_digit_task_ids_survive_inspects_yaml_reading():
    """`-T task_ids=22168020` reaches the task as the int 22168020, `00576224` as an octal int."""
    import yaml

    task = arc1(split="training", task_ids=yaml.safe_load("22168020"), sandbox="local")
    assert [s.id for s in task.dataset] == ["22168020"]
    task = arc1(task_ids=[yaml.safe_load("00576224"), "0a1d4ef5"], sandbox="local")
    assert [s.id for s in task.dataset] == ["00576224", "0a1d4ef5"]


# -- the replay model -------------------------------------------------------------------------------

def write_lines(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def _ask(model, task_id: str, attempt: int, n: int = 1):
    from inspect_ai.model import GenerateConfig

    token = current_attempt.set((task_id, attempt))
    try:
        return await model.api.generate([], [], "none", GenerateConfig(num_choices=n if n > 1 else None))
    finally:
        current_attempt.reset(token)


def test_replay_serves_recordings_by_task_and_attempt(tmp_path):
    import anyio

    path = write_lines(tmp_path / "r.jsonl", [
        {"task_id": "t1", "attempt": 1, "completion": "one", "stop_reason": "stop"},
        {"task_id": "t1", "attempt": 2, "completion": "two", "stop_reason": "max_tokens"},
        {"task_id": "t1", "attempt": 3, "completion": None, "error": "server down"},
        {"task_id": "t2", "attempt": 1, "completion": None, "error": "timeout"},
        {"task_id": "t2", "attempt": 2, "completion": "late"},
    ])
    model = get_model("rps/replay", responses=str(path))
    assert isinstance(model.api, ReplayAPI)

    async def check():
        out = await _ask(model, "t1", 2)
        assert (out.completion, out.stop_reason) == ("two", "max_tokens")
        assert out.usage is not None and out.usage.output_tokens > 0
        out = await _ask(model, "t1", 1, n=3)  # several choices: served up to the recorded error
        assert [(c.message.text, c.stop_reason) for c in out.choices] == [("one", "stop"), ("two", "max_tokens")]
        with pytest.raises(RecordedAPIError, match="server down"):
            await _ask(model, "t1", 3)
        with pytest.raises(AttemptMissing, match="no response for task t1 attempt 4"):
            await _ask(model, "t1", 4)
        out = await _ask(model, "t2", 1, n=2)  # leading error in a several-choices request
        assert out.choices == [] and out.error == "timeout"
        out = await _ask(model, "t2", 2)
        assert out.completion == "late" and out.stop_reason == "unknown"

    anyio.run(check)
    assert not model.api.should_retry(RecordedAPIError("x"))


def test_replay_defaults_to_the_demo_and_rejects_bad_input(tmp_path):
    assert get_model("rps/replay").api.path == demo_responses_path()
    with pytest.raises(ValueError, match="the only one is rps/replay"):
        get_model("rps/other")
    with pytest.raises(ValueError, match="takes only -M responses"):
        get_model("rps/replay", responses=str(demo_responses_path()), foo=1)
    bad = write_lines(tmp_path / "bad.jsonl", [{"task_id": "t", "attempt": 1, "stop_reason": "length"}])
    with pytest.raises(ValueError, match="stop_reason must be one of"):
        get_model("rps/replay", responses=str(bad))
    dup = write_lines(tmp_path / "dup.jsonl", [{"task_id": "t", "attempt": 1}] * 2)
    with pytest.raises(ValueError, match="duplicate response for task t attempt 1"):
        get_model("rps/replay", responses=str(dup))


# -- one answer from every front end: missing, refusals, provenance ------------------------------

def _gappy_demo(tmp_path: Path) -> Path:
    """The demo with 3c9b0459 #1, 25ff71a9 #2 and both 67a3c6ac attempts left out (4 missing), and
    recorded token counts: 100 for each attempt 1, 200 for each attempt 2 (the api error has none)."""
    lines = []
    for line in map(json.loads, demo_responses_path().read_text().splitlines()):
        if (line["task_id"], line["attempt"]) in {("3c9b0459", 1), ("25ff71a9", 2)} or line["task_id"] == "67a3c6ac":
            continue
        if line.get("completion") is not None:
            line["output_tokens"] = 100 * line["attempt"]
        lines.append(line)
    return write_lines(tmp_path / "gappy.jsonl", lines)


@pytest.mark.slow
def test_a_missing_attempt_is_missing_in_inspect_as_in_score(tmp_path):
    path = _gappy_demo(tmp_path)
    task = arc1(split="training", task_ids=DEMO_IDS, sandbox="local", exec_timeout=3)
    (log,) = inspect_eval(task, model="rps/replay", model_args={"responses": str(path)}, display="none")
    core = core_score(path, tmp_path / "core")
    metrics = inspect_metrics(log)
    assert_same_numbers(metrics, core)
    assert (metrics["api_errors_n"], metrics["api_errors_of"]) == (1, 16)  # a416b8f3 #1 only
    reported = report(log.location, tmp_path / "run")
    assert scores_of(reported) == scores_of(core)
    missing = [(r["task_id"], r["attempt"]) for r in map(json.loads, (tmp_path / "run" / "attempts.jsonl").open())
               if r["missing"]]
    assert missing == [("3c9b0459", 1), ("25ff71a9", 2), ("67a3c6ac", 1), ("67a3c6ac", 2)]

    # provenance: in the task's metadata, beside the metrics' results, and in the report
    block = log.eval.metadata["rps_evals"]["provenance"]
    assert log.results.scores[0].params["provenance"] == block
    assert (block["dataset"], block["k"], block["exec_timeout"]) == ("arc1:training", 2, 3.0)
    assert (block["program_synthesis"], block["prompt_version"]) == ("allowed", "arc-prog-v2")
    assert block["sandbox"]["backend"] == "local"
    assert reported["provenance"] == {**block, "model": "rps/replay", "generation": reported["provenance"]["generation"]}
    assert core["provenance"]["program_synthesis"] is None  # a responses file does not say its prompt
    for key in ("dataset", "dataset_hash", "k", "sandbox"):
        assert reported["provenance"][key] == core["provenance"][key], key
    # usage: 11 recorded counts, 5 x 100 and 6 x 200: mean 1700/11, nearest-rank p50 and p90 200
    want = {"attempts": 11, "mean": 1700 / 11, "p50": 200, "p90": 200, "max": 200}
    assert reported["usage"]["output_tokens_per_attempt"] == want == core["usage"]["output_tokens_per_attempt"]
    # Inspect stamps start and end to the second, so a fast replay may read 0.0 s
    assert reported["usage"]["output_tokens"] == 1700 and reported["usage"]["wall_time_s"] >= 0.0


def test_replay_usage_without_recorded_counts_is_not_reported(demo_log, tmp_path):
    reported = report(demo_log.location, tmp_path / "run")
    usage = reported["usage"]
    assert usage["output_tokens_per_attempt"] is None  # the demo records none: the estimate stays out
    assert (usage["output_tokens"], usage["total_tokens"]) == (None, None)


def test_replay_with_nothing_for_the_selection_is_refused_at_task_start(tmp_path):
    """The bundled demo holds ARC-AGI-1 training answers; arc2 would score 240 missing attempts."""
    proc = subprocess.run(["inspect", "eval", "rps_evals/arc2.py", "--model", "rps/replay", "-T", "sandbox=local",
                           "--log-dir", str(tmp_path / "logs")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = " ".join((proc.stdout + proc.stderr).split())  # Inspect wraps the message to the terminal
    assert proc.returncode != 0 and "Traceback" not in out
    assert "has no response for any of the 120 selected tasks of arc2:evaluation" in out, out[-2000:]
    assert not list((tmp_path / "logs").glob("*.eval"))  # refused before the eval started


def test_replay_with_nothing_for_a_task_built_beforehand_fails_every_sample(tmp_path):
    """Python API: the task exists before the model, so each sample refuses, and report refuses the log."""
    task = arc2(task_ids="0934a4d8,135a2760", sandbox="local")
    (log,) = inspect_eval(task, model="rps/replay", display="none")
    assert log.status == "error" and len(log.samples) == 2
    assert all("has no response for any of the 2 selected tasks of arc2:evaluation" in s.error.message
               for s in log.samples)
    assert rps_main(["report", log.location, "--out", str(tmp_path / "run")]) == 1


def test_report_rejects_other_inputs(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    assert rps_main(["report", str(tmp_path / "results.json"), "--out", str(tmp_path / "o")]) == 2
    assert "is not an output this command reads" in capsys.readouterr().err
    assert rps_main(["report", str(tmp_path / "missing.eval"), "--out", str(tmp_path / "o")]) == 2


# -- API errors and eval-retry ---------------------------------------------------------------------

FLAKY_FLAG = "RPS_TEST_FLAKY_TASK"


@modelapi(name="rps_test_flaky")
def _flaky():
    class FlakyReplay(ReplayAPI):
        """The demo replay, except that it raises for the task named in $RPS_TEST_FLAKY_TASK,
        as a server that dies mid-run would; FlakyReplay takes no `n`, so attempts go one by one."""

        def __init__(self, model_name: str, **kwargs):
            super().__init__("replay", **kwargs)

        async def generate(self, input, tools, tool_choice, config):
            asked = current_attempt.get()
            if asked and asked[0] == os.environ.get(FLAKY_FLAG):
                raise ConnectionError("connection reset by peer")
            return await super().generate(input, tools, tool_choice, config)

    return FlakyReplay


@modelapi(name="rps_test_metered")
def _metered():
    class MeteredReplay(ReplayAPI):
        """The demo replay reporting usage as a provider does: attempt a's request used 100 input,
        10 * a output and 3 * a reasoning tokens. Not in NUM_CHOICES_APIS: one request per attempt."""

        def __init__(self, model_name: str, **kwargs):
            super().__init__("replay", **kwargs)

        async def generate(self, input, tools, tool_choice, config):
            from inspect_ai.model import ModelUsage

            served = await super().generate(input, tools, tool_choice, config)
            a = current_attempt.get()[1]
            usage = ModelUsage(input_tokens=100, output_tokens=10 * a, total_tokens=100 + 10 * a,
                               reasoning_tokens=3 * a)
            return ModelOutput(model="metered", choices=served.choices, usage=usage)

    return MeteredReplay


@pytest.mark.slow
def test_usage_and_generation_settings_come_from_inspect(tmp_path):
    ids = ["3c9b0459", "25ff71a9"]
    task = arc1(split="training", task_ids=ids, sandbox="local")
    (log,) = inspect_eval(task, model="rps_test_metered/demo", display="none", temperature=0.5, seed=7)
    reported = report(log.location, tmp_path / "run")
    usage = reported["usage"]
    # output 10, 20, 10, 20: mean 15, nearest-rank p50 the 2nd (10), p90 the 4th (20)
    assert usage["output_tokens_per_attempt"] == {"attempts": 4, "mean": 15.0, "p50": 10, "p90": 20, "max": 20}
    assert usage["reasoning_tokens_per_attempt"] == {"attempts": 4, "mean": 4.5, "p50": 3, "p90": 6, "max": 6}
    assert (usage["output_tokens"], usage["reasoning_tokens"], usage["total_tokens"]) == (60, 18, 460)
    records = [json.loads(line) for line in (tmp_path / "run" / "attempts.jsonl").open()]
    assert [(r["output_tokens"], r["reasoning_tokens"]) for r in records] == [(10, 3), (20, 6)] * 2
    provenance = reported["provenance"]
    assert provenance["model"] == log.eval.model == "rps_test_metered/replay"
    assert (provenance["generation"]["temperature"], provenance["generation"]["seed"]) == (0.5, 7)


@pytest.mark.slow
def test_api_error_is_counted_and_eval_retry_completes_the_log(tmp_path, monkeypatch):
    ids = ["3c9b0459", "25ff71a9", "ed36ccf7"]
    monkeypatch.setenv(FLAKY_FLAG, "25ff71a9")
    task = arc1(split="training", task_ids=ids, sandbox="local")
    (log,) = inspect_eval(task, model="rps_test_flaky/demo", display="none")
    metrics = inspect_metrics(log)
    assert (metrics["api_errors_n"], metrics["api_errors_of"]) == (2, 6)
    assert (metrics["invalid_attempts_n"], metrics["task_solves_n"], metrics["task_solves_of"]) == (2, 2, 3)
    (failed,) = [s for s in log.samples if s.error]
    assert failed.id == "25ff71a9" and "connection reset by peer" in failed.error.message
    records = failed.scores[SCORER_NAME].metadata["attempts"]
    assert [r["api_error"] for r in records] == ["ConnectionError: connection reset by peer"] * 2
    assert log.status == "error"  # 1 of 3 samples errored: over the task's fail_on_error of 0.25
    # every sample ran and was scored: the failed generations are counted, no --allow-errors needed
    partial = report(log.location, tmp_path / "partial")
    assert partial["metrics"]["api_errors"] == {"n": 2, "of": 6, "rate": 2 / 6}
    assert (partial["status"]["status"], partial["status"]["failed_generations"], partial["status"]["unmeasured"]) == \
        ("error", 1, 0)
    assert partial["status"]["error"].startswith("1 of 3 samples errored (first: GenerationFailed('task 25ff71a9")

    monkeypatch.delenv(FLAKY_FLAG)  # the server is back
    (retried,) = eval_retry(log, display="none")
    assert retried.status == "success" and not any(s.error for s in retried.samples)
    metrics = inspect_metrics(retried)
    assert (metrics["api_errors_n"], metrics["task_solves_n"], metrics["task_solves_of"]) == (0, 3, 3)
    complete = report(retried.location, tmp_path / "complete")
    assert complete["metrics"]["api_errors"]["n"] == 0 and "status" not in complete


@pytest.mark.slow
def test_more_attempts_than_official_and_unscored_tasks(tmp_path):
    """k = 3 (pass@k extras) and several-choices requests served in part: a (task, attempt) with
    no recording is missing, as `rps-evals score` counts it, still in every denominator."""
    lines = [json.loads(line) for line in demo_responses_path().read_text().splitlines()]
    lines = [dict(line, attempt=3) if line["task_id"] == "3c9b0459" and line["attempt"] == 2 else line
             for line in lines]
    path = write_lines(tmp_path / "k3.jsonl", lines)
    ids = ["3c9b0459", "25ff71a9"]
    task = arc1(split="training", task_ids=ids, attempts=3, sandbox="local")
    (log,) = inspect_eval(task, model="rps/replay", model_args={"responses": str(path)}, display="none")
    metrics = inspect_metrics(log)
    assert (metrics["api_errors_n"], metrics["api_errors_of"]) == (0, 6)
    assert metrics["task_solves_n"] == 2
    reported = report(log.location, tmp_path / "run")
    missing = [(r["task_id"], r["attempt"]) for r in map(json.loads, (tmp_path / "run" / "attempts.jsonl").open())
               if r["missing"]]
    assert missing == [("3c9b0459", 2), ("25ff71a9", 3)]
    core = core_score(path, tmp_path / "core", task_ids=ids, k=3)
    assert scores_of(reported) == scores_of(core)
    assert reported["attempts_per_task"] == 3 and "oracle_task_solves" in reported["metrics"]


@pytest.mark.slow
def test_cli_eval_retry_completes_a_log_with_failed_generations(tmp_path):
    """The command-line path: a recording whose generations failed for one task, then (the server
    "back") the same file with completions; `inspect eval-retry` re-runs only that sample."""
    demo = [json.loads(line) for line in demo_responses_path().read_text().splitlines()]
    ids = ["3c9b0459", "67a3c6ac"]
    good = [line for line in demo if line["task_id"] in ids]
    failing = [dict(line, completion=None, stop_reason=None, error="503 Service Unavailable")
               if line["task_id"] == "67a3c6ac" else line for line in good]
    responses = write_lines(tmp_path / "responses.jsonl", failing)
    logs = tmp_path / "logs"
    base = ["--log-dir", str(logs), "--display", "none"]
    proc = subprocess.run(["inspect", "eval", "rps_evals/arc1.py", "-T", "split=training", "-T",
                           "task_ids=" + ",".join(ids), "-T", "sandbox=local", "--model", "rps/replay",
                           "-M", f"responses={responses}", *base],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first,) = logs.glob("*.eval")
    assert report(str(first), tmp_path / "first", "--allow-errors")["metrics"]["api_errors"]["n"] == 2

    write_lines(responses, good)
    proc = subprocess.run(["inspect", "eval-retry", str(first), *base],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (retried,) = set(logs.glob("*.eval")) - {first}
    result = report(str(retried), tmp_path / "retried")
    assert scores_of(result) == scores_of(core_score(responses, tmp_path / "core", task_ids=ids))
    assert result["metrics"]["api_errors"]["n"] == 0


def test_replayed_reasoning_reaches_the_records_as_a_provider_returns_it(tmp_path):
    """A responses line with `reasoning` comes back as a ContentReasoning part beside the text, so the
    solver keeps it apart from the completion, as with vLLM's reasoning_content."""
    lines = [{"task_id": "25ff71a9", "attempt": 1, "completion": "no program here", "stop_reason": "stop",
              "reasoning": "the shape moves down by one row"},
             {"task_id": "25ff71a9", "attempt": 2, "completion": "nor here", "stop_reason": "stop"}]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(line) + "\n" for line in lines))
    task = arc1(split="training", task_ids="25ff71a9", sandbox="local")
    (log,) = inspect_eval(task, model="rps/replay", model_args={"responses": str(responses)}, display="none")
    assert log.status == "success"
    records = log.samples[0].scores[SCORER_NAME].metadata["attempts"]
    assert [(r["completion"], r["reasoning"]) for r in records] == [
        ("no program here", "the shape moves down by one row"), ("nor here", None)]
