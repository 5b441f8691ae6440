"""A stand-in for `vllm serve` in the workflow test: an OpenAI-compatible chat server on 127.0.0.1.

It answers ARC prompts from a recorded responses file (the `rps-evals score` JSONL format; a
task's lines are its recorded samples), so the workflow's real eval step (Inspect's `openai-api`
provider, the task, the sandbox) runs without a GPU. A request is matched to its task by the exact
prompt the task sends; with a `seed` the request draws its `n` answers from the task's samples
(with replacement, seeded by seed and task: sampling noise that replays), without one it gets the
first `n`. Every request's sampling fields are appended to a JSON-lines log for the test to read.

Two ways to start it:
  python tests/fake_openai_server.py --port P --dataset D --responses F --model NAME --api-key KEY
  vllm serve BASE --port P ... --lora-modules NAME=DIR ... --api-key KEY   (as the `vllm` on PATH:
      the arguments are written to $FAKE_VLLM_ARGV, the rest comes from $FAKE_VLLM_DATASET and
      $FAKE_VLLM_RESPONSES; the models are BASE and every adapter name)
It serves until it is killed, or until --max-requests requests (a bound for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SAMPLING_FIELDS = ("model", "n", "seed", "temperature", "top_p", "top_k", "min_p", "max_tokens",
                   "chat_template_kwargs")


def prompts_to_tasks(dataset_name: str, task_ids: set[str]) -> dict[str, str]:
    """Every prompt (each program-synthesis mode) of the given tasks -> its task id."""
    from rps_evals.data import load_dataset
    from rps_evals.prompt import ProgramSynthesis, build_prompt

    tasks = load_dataset(dataset_name).tasks
    return {build_prompt(tasks[t], mode): t for t in task_ids for mode in ProgramSynthesis}


def read_samples(path: Path) -> dict[str, list[dict]]:
    samples: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            samples.setdefault(record["task_id"], []).append(record)
    for records in samples.values():
        records.sort(key=lambda r: r["attempt"])
    return samples


def draw_samples(recorded: list, task_id: str, seed: int | None, n: int) -> list:
    """The n answers a request gets: the first n without a seed, else n seeded draws with replacement."""
    if seed is None:
        return [recorded[i % len(recorded)] for i in range(n)]
    rng = random.Random(f"{seed}/{task_id}")
    return [rng.choice(recorded) for _ in range(n)]


class FakeModelServer:
    """The server; `start()` runs it on a thread (tests), `serve()` in the foreground (a process)."""

    def __init__(self, dataset: str, responses: Path, models: list[str], api_key: str | None,
                 port: int = 0, request_log: Path | None = None, max_requests: int = 10_000):
        self.samples = read_samples(responses)
        self.prompts = prompts_to_tasks(dataset, set(self.samples))
        self.models, self.api_key, self.request_log = models, api_key, request_log
        self.max_requests, self.requests = max_requests, 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeModelServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def serve(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one chat completion request."""
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"model {body.get('model')!r} is not served", "type": "NotFound"}}
        prompt = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), None)
        if isinstance(prompt, list):  # content parts
            prompt = "".join(part.get("text", "") for part in prompt)
        task_id = self.prompts.get(prompt)
        if task_id is None:
            return 400, {"error": {"message": "not a prompt of a recorded task", "type": "BadRequest"}}
        chosen = draw_samples(self.samples[task_id], task_id, body.get("seed"), int(body.get("n") or 1))
        choices = [{"index": i, "finish_reason": "length" if r.get("stop_reason") in ("max_tokens", "model_length")
                    else "stop", "message": {"role": "assistant", "content": r["completion"]}}
                   for i, r in enumerate(chosen)]
        completion_tokens = sum(len(r["completion"] or "") // 4 + 1 for r in chosen)
        prompt_tokens = len(prompt) // 4
        return 200, {"id": f"fake-{self.requests}", "object": "chat.completion", "created": 0,
                     "model": body["model"], "choices": choices,
                     "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                               "total_tokens": prompt_tokens + completion_tokens}}

    def _log(self, body: dict, status: int) -> None:
        if self.request_log is not None:
            entry = {key: body.get(key) for key in SAMPLING_FIELDS if key in body}
            with self.lock, open(self.request_log, "a", encoding="utf-8") as log:
                log.write(json.dumps({**entry, "status": status}) + "\n")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the workflow's server log would fill with lines
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "Unauthorized", "type": "Unauthorized"}})
                    return False
                return True

            def _count(self) -> bool:
                with server.lock:
                    server.requests += 1
                    over = server.requests > server.max_requests
                if over:
                    threading.Thread(target=server.httpd.shutdown, daemon=True).start()
                return not over

            def do_GET(self):
                if not self._count() or not self._authorized():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                if not self._count() or not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                status, payload = server.answer(body)
                server._log(body, status)
                self._send(status, payload)

        return Handler


def _as_vllm(argv: list[str]) -> FakeModelServer:
    """`vllm serve BASE --port P ... --lora-modules A=DIR B=DIR ... --api-key KEY`."""
    Path(os.environ["FAKE_VLLM_ARGV"]).write_text(json.dumps(["vllm", *argv]), encoding="utf-8")
    if argv[:1] != ["serve"] or len(argv) < 2:
        sys.exit(f"fake vllm: expected `vllm serve MODEL ...`, got {argv}")
    models, port, api_key, i = [argv[1]], None, None, 2
    while i < len(argv):
        if argv[i] == "--port":
            port, i = int(argv[i + 1]), i + 2
        elif argv[i] == "--api-key":
            api_key, i = argv[i + 1], i + 2
        elif argv[i] == "--lora-modules":
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                models.append(argv[i].partition("=")[0])
                i += 1
        else:
            i += 1
    if port is None:
        sys.exit("fake vllm: no --port")
    log = os.environ.get("FAKE_VLLM_REQUESTS")
    return FakeModelServer(os.environ["FAKE_VLLM_DATASET"], Path(os.environ["FAKE_VLLM_RESPONSES"]), models,
                           api_key, port, Path(log) if log else None)


def main(argv: list[str]) -> None:
    if os.environ.get("FAKE_VLLM_ARGV"):
        server = _as_vllm(argv)
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--responses", type=Path, required=True)
        parser.add_argument("--model", action="append", required=True)
        parser.add_argument("--api-key")
        parser.add_argument("--request-log", type=Path)
        parser.add_argument("--max-requests", type=int, default=10_000)
        args = parser.parse_args(argv)
        server = FakeModelServer(args.dataset, args.responses, args.model, args.api_key, args.port,
                                 args.request_log, args.max_requests)
    print(f"serving {', '.join(server.models)} on {server.base_url}", flush=True)
    server.serve()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(sys.argv[1:])
