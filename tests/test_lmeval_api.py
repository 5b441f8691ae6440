"""lm-eval's `local-chat-completions` backend against a local stand-in for `vllm serve` that replays
the recorded responses: a response without usable content is an API error, stop reasons come from
the tokenizer named in the model args, the sampling settings reach the server, and every metric
equals `rps-evals score` on the same file."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lmeval_support import TASKS_DIR, pick_tasks, recorded_rows, write_responses

from rps_evals.cli import main as rps_main
from rps_evals.data import load_dataset
from rps_evals.prompt import build_prompt
from rps_evals.scoring import METRICS

TASK, DATASET, TIMEOUT = "arc1_prog_training", "arc1:training", 1.0


class ReplayServer(ThreadingHTTPServer):
    """An OpenAI-style /v1/chat/completions that answers each prompt's n-th request with attempt n."""

    def __init__(self, rows, tasks):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.rows = {(r["task_id"], r["attempt"]): r for r in rows}
        self.prompts = {build_prompt(t): t.task_id for t in tasks}
        self.seen: dict[str, int] = {}
        self.payloads: list[dict] = []
        self.lock = threading.Lock()

    def answer(self, payload: dict) -> dict:
        content = payload["messages"][-1]["content"]
        task_id = next(tid for prompt, tid in self.prompts.items() if prompt in content)
        with self.lock:
            self.payloads.append(payload)
            self.seen[task_id] = attempt = self.seen.get(task_id, 0) + 1
        row = self.rows[(task_id, attempt)]
        if row["completion"] is None:  # what a failing proxy sends with status 200: no choices at all
            return {"error": {"message": row["error"], "type": "server_error"}}
        return {"id": "x", "object": "chat.completion", "model": payload["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": row["completion"]}}]}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(self.server.answer(payload)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_and_core(tmp_path, tiny_qwen3):
    from transformers import AutoTokenizer

    indices, tasks = pick_tasks(load_dataset(DATASET))
    rows = recorded_rows(tasks)
    responses = tmp_path / "responses.jsonl"
    limit = write_responses(responses, rows, AutoTokenizer.from_pretrained(tiny_qwen3))
    order = list(load_dataset(DATASET).tasks)
    assert rps_main(["score", "--dataset", DATASET, "--responses", str(responses), "--out", str(tmp_path / "core"),
                     "--sandbox", "local", "--timeout", str(TIMEOUT),
                     "--task-ids", *sorted((t.task_id for t in tasks), key=order.index)]) == 0
    server = ReplayServer(rows, tasks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, indices, limit, json.loads((tmp_path / "core" / "results.json").read_text())
    server.shutdown()
    server.server_close()


def test_local_chat_completions_counts_api_errors_and_equals_the_core(server_and_core, tiny_qwen3):
    import lm_eval
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import simple_parse_args_string

    server, indices, limit, core = server_and_core
    model_args = (f"model=rps,base_url=http://127.0.0.1:{server.server_port}/v1/chat/completions,"
                  f"num_concurrent=1,max_retries=1,tokenizer={tiny_qwen3}")
    # what the lm_eval CLI does: model args and --metadata become every task's metadata
    metadata = simple_parse_args_string(model_args) | {"rps_sandbox": "local", "rps_exec_timeout": TIMEOUT}
    results = lm_eval.simple_evaluate(
        model="local-chat-completions", model_args=model_args, tasks=[TASK], samples={TASK: indices},
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata),
        apply_chat_template=True, gen_kwargs={"max_gen_toks": limit, "seed": None}, confirm_run_unsafe_code=True,
        log_samples=True, bootstrap_iters=0)

    got = results["results"][TASK]
    for name in METRICS:
        assert got[f"{name},all_attempts"] == core["metrics"][name]["rate"], name
    assert got["api_errors,all_attempts"] == 1 / 14 and got["token_limit_hits,all_attempts"] == 1 / 14
    assert got["stop_reason_unknown,all_attempts"] == 0
    assert len(server.payloads) == 14
    sent = server.payloads[0]
    assert sent["model"] == "rps" and sent["max_tokens"] == limit
    assert sent["seed"] is None  # lm-eval's fixed seed would make a vLLM server repeat attempt 1
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["min_p"]) == (0.6, 0.95, 20, 0.0)
