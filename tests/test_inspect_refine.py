"""`-T refine=R`: multi-turn program repair through Inspect's OpenAI-compatible provider, against a
fake server on 127.0.0.1 that answers a feedback turn differently from a first turn; the repair
metrics of the core, `rps-evals report` and the replay model on the rounds."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")
pytest.importorskip("openai")

from rps_evals.data import load_dataset  # noqa: E402
from rps_evals.prompt import build_prompt  # noqa: E402

from inspect_support import DEMO_IDS  # noqa: E402

DATASET = load_dataset("arc1:training")
CHROMIUM = "/usr/bin/chromium"
CRASH = "Python program:\n```python\ndef transform(grid):\n    raise ValueError('boom: {tag}')\n```"
IDENTITY = "Python program:\n```python\ndef transform(grid):\n    return grid  # {tag}\n```"


def right(task_id: str, tag: str = "") -> str:
    """A program right on every pair of the task (a lookup table of its grids, written as a string)."""
    task = DATASET.tasks[task_id]
    pairs = [*task.train, *zip(task.test_inputs, task.test_outputs)]
    table = json.dumps({json.dumps([list(row) for row in i]): o for i, o in pairs})
    return ("Python program:\n```python\nimport json\n"
            f"TABLE = json.loads({table!r})\n\n"
            f"def transform(grid):  # {tag}\n    return TABLE[json.dumps([list(row) for row in grid])]\n```")


PROMPTS = {build_prompt(task): task_id for task_id, task in DATASET.tasks.items()}


class FakeServer:
    """/v1/chat/completions on 127.0.0.1. `script(task_id, choice, round)` gives the answer to a
    conversation: a string (finish `stop`), ("length", text), or an int HTTP error status. `choice`
    is the index of the round-0 choice the conversation started from (its text carries `#c<i>`)."""

    def __init__(self, script):
        self.requests: list[tuple[str, int, int, int]] = []  # (task id, choice, round, n)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = body["messages"]
                text = lambda m: m["content"] if isinstance(m["content"], str) else "".join(  # noqa: E731
                    p.get("text", "") for p in m["content"])
                task_id = PROMPTS[text(messages[0])]
                round = sum(m["role"] == "user" for m in messages) - 1
                n = body.get("n") or 1
                if round == 0:
                    answers = [script(task_id, i, 0) for i in range(n)]
                    tags = list(range(n))
                else:
                    choice = int(text(messages[1]).split("#c")[1].split()[0].rstrip("'\")"))
                    answers, tags = [script(task_id, choice, round)], [choice]
                for tag in tags:
                    server.requests.append((task_id, tag, round, n))
                if isinstance(answers[0], int):
                    return self._send(answers[0], {"error": {"message": "the server is overloaded"}})
                choices = []
                for i, (answer, tag) in enumerate(zip(answers, tags)):
                    finish, content = answer if isinstance(answer, tuple) else ("stop", answer)
                    choices.append({"index": i, "finish_reason": finish,
                                    "message": {"role": "assistant", "content": content.replace("{tag}", f"#c{tag}")}})
                self._send(200, {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": choices,
                                 "usage": {"prompt_tokens": 100 * (round + 1), "completion_tokens": 10 * n,
                                           "total_tokens": 100 * (round + 1) + 10 * n}})

            def _send(self, status, data):
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


_runs = iter(range(10_000))


def run_eval(server: FakeServer, tmp_path: Path, monkeypatch, task_ids, refine: int, eval_args: dict | None = None,
             **task_args):
    """rps_evals/arc1 on these training tasks, 2 attempts, `refine` rounds, through the fake server."""
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1

    monkeypatch.setenv("FAKE_BASE_URL", server.url)
    monkeypatch.setenv("FAKE_API_KEY", "EMPTY")
    (log,) = inspect_eval(arc1(split="training", task_ids=list(task_ids), sandbox="local", refine=refine, **task_args),
                          model=f"openai-api/fake/m{server.httpd.server_address[1]}-{next(_runs)}",
                          model_base_url=server.url, log_dir=str(tmp_path / "logs"), display="none",
                          max_retries=0, **(eval_args or {}))
    return log


def counts(log) -> dict[str, tuple[int, int]]:
    from rps_evals.inspect_eval.counts import log_counts

    return {name: (c["n"], c["of"]) for name, c in log_counts(log).items()}


def done_when_script(task_id: str, choice: int, round: int) -> str:
    """The issue's scenario: the first 4 tasks right at round 0; the other 4 crash at round 0,
    answer wrongly after one feedback round and rightly after two."""
    if task_id in DEMO_IDS[:4]:
        return right(task_id, "{tag}")
    return (CRASH, IDENTITY, right(task_id, "{tag}"))[min(round, 2)]


@pytest.mark.slow
def test_done_when_8_tasks_refine_0_1_2(tmp_path, monkeypatch):
    from rps_evals.reports.readers import read_front_end_run
    from rps_evals.scoring import summarize

    for task_id in DEMO_IDS[4:]:  # the identity program is wrong on the training pairs of these tasks
        assert any(i != o for i, o in DATASET.tasks[task_id].train)
    from rps_evals.inspect_eval import scorer

    ran: list[int] = []  # programs with source per call of the one run_programs (solver and scorer)
    run_programs = scorer.run_programs

    async def counted(programs, *args):
        ran.append(sum(1 for p in programs if p.source))
        return await run_programs(programs, *args)

    monkeypatch.setattr(scorer, "run_programs", counted)
    results = {}
    for refine in (0, 1, 2):
        ran.clear()
        with FakeServer(done_when_script) as server:
            log = run_eval(server, tmp_path / str(refine), monkeypatch, DEMO_IDS, refine)
        assert log.status == "success", [s.error for s in log.samples]
        results[refine] = (counts(log), server.requests, log)
        # each answer's program runs once: round 0's 16, then the 8 later answers per round; the
        # scorer runs only the final answers the solver did not (refine=0: all 16, once)
        assert sum(ran) == {0: 16, 1: 16 + 8, 2: 16 + 8 + 8}[refine]
    assert results[0][0]["task_solves"] == (4, 8)
    assert "repaired_programs" not in results[0][0] and "task_solves_round_0" not in results[0][0]
    assert results[1][0]["task_solves"] == (4, 8)
    assert results[1][0]["repaired_programs"] == (0, 8)
    assert results[1][0]["feedback_rounds"] == (8, 16)
    final, requests, log = results[2]
    assert final["task_solves"] == (8, 8)
    assert final["task_solves_round_0"] == (4, 8)
    assert final["repaired_programs"] == (8, 8)
    assert final["feedback_rounds"] == (16, 16)
    assert final["train_verified_programs"] == (16, 16) and final["train_verified_programs_round_0"] == (8, 16)
    assert final["test_output_exact_round_0"][1] == final["test_output_exact"][1]
    assert final["attempts_from_executed_programs_round_0"] == (8, 16)
    assert final["program_errors_round_0"] == (8, 16) and final["program_errors"] == (0, 16)
    # no feedback for the 4 tasks right at round 0: one request each (both attempts, n=2)
    for task_id in DEMO_IDS[:4]:
        assert [(c, r, n) for t, c, r, n in requests if t == task_id] == [(0, 0, 2), (1, 0, 2)]
    for task_id in DEMO_IDS[4:]:
        assert sorted((c, r, n) for t, c, r, n in requests if t == task_id) == [
            (0, 0, 2), (0, 1, 1), (0, 2, 1), (1, 0, 2), (1, 1, 1), (1, 2, 1)]

    # `rps-evals report` rebuilds the rounds; the core's summary has the per-round curves and tokens
    dataset, records, k, options = read_front_end_run(log.location)
    repaired = next(r for r in records if r.task_id == DEMO_IDS[4] and r.attempt == 1)
    assert [(x["round"], x["program_status"], x["train_verified"]) for x in repaired.rounds] == [
        (0, "error", False), (1, "ok", False)]
    assert "boom: #c0" in repaired.rounds[0]["feedback"] and repaired.train_verified
    summary = summarize(dataset, records, k, **{key: v for key, v in options.items()
                                                if key not in ("provenance", "usage")})
    assert summary["metrics"]["feedback_rounds"] == {"n": 16, "of": 16, "rate": 1.0}
    curve = summary["refinement"]["curve"]
    assert [(c["round"], c["train_verified_programs"]["n"], c["task_solves"]["n"]) for c in curve] == [
        (0, 8, 4), (1, 8, 4), (2, 16, 8)]
    tokens = summary["refinement"]["tokens_per_round"]
    # the requests' usage per round (the fake server's): round 0, one n=2 request per task (100 prompt,
    # 20 output tokens); rounds 1, 2: 8 requests each, 200 / 300 prompt and 10 output tokens
    assert [(t["round"], t["answers"], t["input_tokens"], t["output_tokens"]) for t in tokens] == [
        (0, 16, 800, 160), (1, 8, 1600, 80), (2, 8, 2400, 80)]
    # without the front end's totals, the answers' own counts: round 0's n=2 requests gave none per attempt
    from_records = summarize(dataset, records, k)["refinement"]["tokens_per_round"]
    assert [(t["input_tokens"], t["output_tokens"]) for t in from_records] == [(None, None), (1600, 80), (2400, 80)]
    assert options["provenance"]["refine"] == 2 and options["provenance"]["feedback_version"] == "arc-feedback-v1"
    # cost: every request's tokens (the samples' usage), round 0's n=2 requests included
    assert sum(options["task_tokens"][t][1] for t in DEMO_IDS) == 8 * 20 + 16 * 10


def scenario_script(task_id: str, choice: int, round: int):
    a, b, c = DEMO_IDS[4:7]
    if task_id == a:  # attempt 1 right at round 0 (no feedback); attempt 2 repaired in round 1
        return right(task_id, "{tag}") if choice == 0 or round >= 1 else CRASH
    if task_id == b:  # attempt 1 repaired in round 2; attempt 2 never, cut off at the token limit in round 2
        if choice == 0:
            return (CRASH, IDENTITY, right(task_id, "{tag}"))[round]
        return ("length", "Python program:\n```python\ndef transform(grid):  # {tag}\n    return [") if round == 2 \
            else CRASH
    if task_id == c:  # attempt 1: an API error in round 1; attempt 2 right at round 0
        if choice == 0:
            return 403 if round == 1 else CRASH
        return right(task_id, "{tag}")
    return right(task_id, "{tag}")  # two more tasks right at round 0


@pytest.mark.slow
def test_repair_outcomes(tmp_path, monkeypatch):
    a, b, c, d, e = DEMO_IDS[4:7] + DEMO_IDS[:2]
    with FakeServer(scenario_script) as server:
        log = run_eval(server, tmp_path, monkeypatch, [a, b, c, d, e], refine=2)
    got = counts(log)
    assert got["task_solves"] == (5, 5) and got["task_solves_round_0"] == (4, 5)
    assert got["repaired_programs"] == (2, 4)  # a2 and b1 of a2, b1, b2, c1
    assert got["feedback_rounds"] == (6, 10)  # a2: 1, b1: 2, b2: 2, c1: 1
    assert got["api_errors"] == (1, 10) and got["api_errors_round_0"] == (0, 10)
    assert got["token_limit_hits"] == (1, 10) and got["token_limit_hits_round_0"] == (0, 10)
    by_task = {s.id: s for s in log.samples}
    assert by_task[c].error is not None and "round 1" in by_task[c].error.message  # counted; the sample is scored
    assert all(by_task[t].error is None for t in (a, b, d, e))
    records = {(r["task_id"], r["attempt"]): r for s in log.samples
               for r in s.scores["arc_scorer"].metadata["attempts"]}
    assert records[(a, 1)]["rounds"] == [] and records[(a, 2)]["train_verified"]
    assert [x["program_status"] for x in records[(a, 2)]["rounds"]] == ["error"]
    assert [x["program_status"] for x in records[(b, 2)]["rounds"]] == ["error", "error"]
    assert records[(b, 2)]["stop_reason"] == "max_tokens" and not records[(b, 2)]["train_verified"]
    failed = records[(c, 1)]
    assert failed["api_error"] and failed["completion"] is None  # (its wording: generation.api_error_message)
    assert [x["program_status"] for x in failed["rounds"]] == ["error"]  # the round-0 answer is kept
    assert records[(c, 2)]["rounds"] == [] and records[(c, 2)]["train_verified"]
    # requests: none after a train-verified answer, none after the API error
    assert sorted((t, ch, r) for t, ch, r, _ in server.requests if r > 0) == sorted([
        (a, 1, 1), (b, 0, 1), (b, 0, 2), (b, 1, 1), (b, 1, 2), (c, 0, 1)])


def test_refine_parameter_is_checked_up_front():
    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.task import TaskParameterError

    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(TaskParameterError, match="refine must be an integer >= 0"):
            arc1(split="training", task_ids=DEMO_IDS[:1], sandbox="local", refine=bad)
    with pytest.raises(TaskParameterError, match="program_synthesis=off"):
        arc1(split="training", task_ids=DEMO_IDS[:1], sandbox="local", refine=1, program_synthesis="off")


def write_recording(path: Path) -> Path:
    """The issue's scenario as a multi-round responses file for `rps/replay` (docs/inspect.md)."""
    lines = []
    for task_id in DEMO_IDS:
        for attempt in (1, 2):
            script = [right(task_id, "")] if task_id in DEMO_IDS[:4] else [CRASH, IDENTITY, right(task_id, "")]
            lines += [{"task_id": task_id, "attempt": attempt, "round": r, "stop_reason": "stop", "output_tokens": 10,
                       "completion": text.replace("{tag}", f"attempt {attempt}")} for r, text in enumerate(script)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def replay_run(responses: Path, tmp_path: Path, refine: int, select: str = "first"):
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1

    (log,) = inspect_eval(arc1(split="training", task_ids=DEMO_IDS, sandbox="local", refine=refine, select=select),
                          model="rps/replay", model_args={"responses": str(responses)},
                          log_dir=str(tmp_path / f"logs{refine}"), display="none")
    assert log.status == "success"
    return log


@pytest.mark.slow
def test_replay_select_report_compare_and_view(tmp_path):
    from inspect_support import report

    from rps_evals.compare import compare_runs
    from rps_evals.records import read_run
    from rps_evals.reports.view import load_shown_run, render_report

    responses = write_recording(tmp_path / "rounds.jsonl")
    runs = {}
    for refine in (0, 2):
        log = replay_run(responses, tmp_path, refine, select="train_verified_first")
        got = counts(log)
        runs[refine] = report(log.location, tmp_path / f"run{refine}")
        assert got["task_solves"] == ((8, 8) if refine else (4, 8))
        # the selection's candidates are the final programs (and the round-0 ones for _round_0)
        assert got["task_solves_train_verified_first"] == got["task_solves"]
    assert got["task_solves_round_0"] == (4, 8) and got["task_solves_train_verified_first_round_0"] == (4, 8)
    assert got["repaired_programs"] == (8, 8) and got["feedback_rounds"] == (16, 16)
    results = runs[2]
    assert results["metrics"]["repaired_programs"] == {"n": 8, "of": 8, "rate": 1.0}
    assert results["provenance"]["refine"] == 2 and "refinement" not in runs[0]
    assert [t["output_tokens"] for t in results["refinement"]["tokens_per_round"]] == [160, 80, 80]
    _, records = read_run(tmp_path / "run2")
    assert sum(len(r.rounds) for r in records) == 16

    # compare: paired on the final answers; the round-0 ones pair between two refining runs
    paired = compare_runs(read_run(tmp_path / "run0"), read_run(tmp_path / "run2"))
    assert (paired["metrics"]["task_solves"]["only_b"], paired["metrics"]["task_solves"]["both"]) == (4, 4)
    assert "task_solves_round_0" not in paired["metrics"] and "not paired" in paired["notes"][0]
    assert "WARNING: the runs differ in refine: A 0, B 2" in paired["warnings"][-1]
    same = compare_runs(read_run(tmp_path / "run2"), read_run(tmp_path / "run2"))
    assert same["metrics"]["task_solves_round_0"]["both"] == 4 and same["metrics"]["repaired_programs"]["both"] == 8
    assert not [w for w in same["warnings"] if "refine" in w or "feedback" in w]

    # view: a repaired attempt shows its rounds in order, each with the feedback it got
    page = render_report([load_shown_run(tmp_path / "run2")])
    section = page[page.index(f'id="t-{DEMO_IDS[4]}"'):]
    first = section[:section.index("</section>")]
    assert first.index("<b>round 0</b>") < first.index("<b>round 1</b>") < first.index("<b>round 2</b>: the final")
    assert first.count("feedback sent") == 4 and "Your program raised an error" in first

    # ... and in a real browser: the rounds are drawn top to bottom, nothing is fetched
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run does)")
    playwright = pytest.importorskip("playwright.sync_api")
    html_file = tmp_path / "view.html"
    html_file.write_text(page, encoding="utf-8")
    fetched = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("request", lambda r: fetched.append(r.url))
            tab.goto(f"{html_file.as_uri()}#t-{DEMO_IDS[4]}")
            rounds = tab.locator(f"#t-{DEMO_IDS[4]} .attempt").first.locator(".rounds > div")
            tops = [box["y"] for box in (rounds.nth(i).bounding_box() for i in range(rounds.count()))]
            assert len(tops) == 3 and tops == sorted(tops)  # round 0, round 1, "round 2: the final answer"
            assert rounds.nth(2).inner_text().startswith("round 2")
        finally:
            browser.close()
    assert fetched == [html_file.as_uri()]


@pytest.mark.slow
def test_a_sample_limit_during_refinement_ends_the_sample_with_what_it_has(tmp_path, monkeypatch):
    """Round 0 (one n=2 request) uses 120 tokens; the first feedback request takes the sample past
    its token limit: Inspect ends the sample as a limit (not an error) and it is scored on the
    round-0 answers, which were already run."""
    task_id = DEMO_IDS[4]
    with FakeServer(done_when_script) as server:
        log = run_eval(server, tmp_path, monkeypatch, [task_id], refine=2, eval_args={"token_limit": 300})
    (sample,) = log.samples
    assert sample.error is None and sample.limit is not None and sample.limit.type == "token"
    records = sample.scores["arc_scorer"].metadata["attempts"]
    assert [(r["program_status"], r["api_error"]) for r in records] == [("error", None), ("error", None)]
    assert counts(log)["task_solves"] == (0, 1)

