"""A stand-in for an OpenAI-compatible server (`vllm serve`) on 127.0.0.1 that answers ARC prompts
with scripted completions and misbehaves on cue, for the live-path tests and benchmarks/live_path.py.

Each task (found by its prompt in the request) has a Script: its attempts' completions, whether
every request for it fails with HTTP 500 (`persistent_500`), the faults its first requests meet
(`"429"` with Retry-After, `"503"`, `"drop"`: the connection closed without a response, `"delay"`:
2 s before answering), and which attempts end with finish_reason "length". A request with `n`
returns n choices; lm-eval's k separate requests get attempts 1..k in the order they are answered.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
from dataclasses import dataclass, field

from rps_evals.prompt import build_prompt

DELAY_S = 2.0


@dataclass
class Script:
    completions: list[str]
    persistent_500: bool = False
    faults: list[str] = field(default_factory=list)  # consumed one per request, first requests first
    length_attempts: tuple[int, ...] = ()  # attempts (from 1) answered with finish_reason "length"


class FakeOpenAI:
    """`with FakeOpenAI(scripts, tasks) as server:` serves `server.url` (…/v1) until the block ends;
    `server.requests[task_id]` counts the HTTP requests each task cost, failed ones included."""

    def __init__(self, scripts: dict[str, Script], tasks, program_synthesis: str = "allowed"):
        self.scripts = copy.deepcopy(scripts)  # faults are used up as they are served: each server its own
        self.prompts = {build_prompt(t, program_synthesis): t.task_id for t in tasks}
        self.requests: dict[str, int] = {}
        self.served: dict[str, int] = {}  # attempts answered so far, per task
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - /v1/models and the like: not served
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload, headers = server.answer(body)
                if status is None:  # a dropped connection: no response at all
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(status, payload, headers)

            def _send(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def task_of(self, body: dict) -> str:
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        return next(task_id for prompt, task_id in self.prompts.items() if prompt in content)

    def answer(self, body: dict) -> tuple[int | None, dict, list]:
        task_id = self.task_of(body)
        script = self.scripts[task_id]
        with self.lock:
            self.requests[task_id] = self.requests.get(task_id, 0) + 1
            fault = script.faults.pop(0) if script.faults else None
        if script.persistent_500:
            return 500, {"error": {"message": f"CUDA error: out of memory while serving task {task_id}",
                                   "type": "InternalServerError", "code": 500}}, []
        if fault == "429":
            return 429, {"error": {"message": "rate limited: 10 requests per second", "type": "rate_limit"}}, \
                [("Retry-After", "1")]
        if fault == "503":
            return 503, {"error": {"message": "the engine is restarting", "type": "ServiceUnavailable"}}, []
        if fault == "drop":
            return None, {}, []
        if fault == "delay":
            time.sleep(DELAY_S)
        n = int(body.get("n") or 1)
        with self.lock:
            first = self.served.get(task_id, 0)
            self.served[task_id] = first + n
        choices = []
        for i in range(n):
            attempt = first + i + 1
            text = script.completions[(attempt - 1) % len(script.completions)]
            reason = "length" if attempt in script.length_attempts else "stop"
            choices.append({"index": i, "finish_reason": reason, "message": {"role": "assistant", "content": text}})
        return 200, {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": choices,
                     "usage": {"prompt_tokens": 100, "completion_tokens": 10 * n, "total_tokens": 100 + 10 * n}}, []
