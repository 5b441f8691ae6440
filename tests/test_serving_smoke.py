"""`python -m rps_evals.serving --smoke`: the dry run's commands, the message where vLLM or a GPU is
missing, and the eval + log checks of the smoke run against a fake OpenAI-compatible server (the
same `inspect eval` command line it runs against vLLM)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from rps_evals import serving_smoke
from rps_evals.serving import main as serving_main
from rps_evals.serving import shell_line, vllm_serve_args



def test_dry_run_prints_a_serve_line_with_both_adapters(tmp_path, capsys):
    assert serving_main(["--smoke", "--dry-run", "--out", str(tmp_path), "--port", "8123"]) == 0
    lines = capsys.readouterr().out.splitlines()
    serve = [line for line in lines if line.startswith("vllm serve ")]
    assert serve == [shell_line(vllm_serve_args(
        str(tmp_path / "tiny-qwen3"), {"smoke_a": str(tmp_path / "smoke_a" / "stage1"),
                                       "smoke_b": str(tmp_path / "smoke_b" / "stage1")},
        port=8123, max_lora_rank=8, max_model_len=32768)) + " &"]
    assert " --max-loras 2 --lora-modules smoke_a=" in serve[0] and " --reasoning-parser qwen3" in serve[0]
    assert lines[0] == f"rps-train tiny-model --out {tmp_path / 'tiny-qwen3'}"
    trains = [line for line in lines if line.startswith("rps-train train ")]
    assert len(trains) == 2 and all("--lora_r 8 " in t and "--stages 1 " in t for t in trains)
    assert [t.split("--output_dir ")[1].split()[0] for t in trains] == [str(tmp_path / "smoke_a"),
                                                                      str(tmp_path / "smoke_b")]
    assert "export VLLM_BASE_URL=http://localhost:8123/v1 VLLM_API_KEY=EMPTY" in lines
    evals = [line for line in lines if line.startswith("inspect eval ")]
    assert [e.split("--model ")[1].split()[0] for e in evals] == ["openai-api/vllm/smoke_a", "openai-api/vllm/smoke_b"]
    for line in evals:
        assert "-T task_ids=00576224,009d5c81,00dbd492,03560426 -T attempts=2 -T sandbox=local" in line
        assert line.endswith("--max-tokens 128")


def test_dry_run_needs_smoke(capsys):
    with pytest.raises(SystemExit) as exit_info:
        serving_main(["--dry-run"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith("error: --dry-run goes with --smoke\n")


def test_missing_vllm_and_gpu_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("vllm", "nvidia-smi") else f"/bin/{name}")
    real_find_spec = serving_smoke.importlib.util.find_spec
    monkeypatch.setattr(serving_smoke.importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert serving_main(["--smoke", "--out", str(tmp_path / "w")]) == 1
    assert capsys.readouterr().err == (
        "error: the serving smoke cannot run here: vLLM is not installed (pip install -e '.[serve]'; GPU machines "
        "only); no CUDA GPU is visible (vLLM serves on a GPU) (--dry-run prints its commands)\n")
    assert not (tmp_path / "w").exists()


# ---- the eval and its checks, against a fake server ------------------------------------------------

class FakeOpenAI:
    """/v1/chat/completions on 127.0.0.1: `n` choices per request (or one if `ignore_n`), 7 tokens each."""

    def __init__(self, ignore_n: bool = False):
        self.requests: list[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                n = 1 if ignore_n else (body.get("n") or 1)
                choices = [{"index": i, "finish_reason": "length",
                            "message": {"role": "assistant", "content": f"w{i} " * 7}} for i in range(n)]
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                   "choices": choices, "usage": {"prompt_tokens": 30, "completion_tokens": 7 * n,
                                                                 "total_tokens": 30 + 7 * n}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _eval_through(fake: FakeOpenAI, tmp_path: Path, name: str) -> Path:
    """The smoke's own `inspect eval` command line for `name`, pointed at the fake server."""
    pytest.importorskip("inspect_ai")
    pytest.importorskip("openai")
    plan = serving_smoke.SmokePlan(tmp_path, port=fake.port)
    argv = plan.eval_command(name)
    argv[0] = shutil.which("inspect") or pytest.fail("inspect is not on PATH")
    # the installed package, as a user runs it (a PYTHONPATH holding the checkout's egg-info makes
    # Inspect register the tasks without their package prefix: "No inspect tasks were found")
    env = {**os.environ, "VLLM_BASE_URL": plan.base_url(), "VLLM_API_KEY": "EMPTY"}
    done = subprocess.run(argv + ["--display", "none"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    (log,) = plan.log_dir(name).glob("*.eval")
    return log


@pytest.mark.slow
def test_the_smoke_eval_and_its_checks(tmp_path):
    fake = FakeOpenAI()
    try:
        log = _eval_through(fake, tmp_path, "smoke_a")
    finally:
        fake.close()
    assert [r["model"] for r in fake.requests] == ["smoke_a"] * 4 and {r["n"] for r in fake.requests} == {2}
    assert {r["max_tokens"] for r in fake.requests} == {128}
    result = serving_smoke.check_log(log, "smoke_a")
    assert result["samples"] == 4 and result["choices_per_request"] == 2
    assert result["output_tokens"] == 4 * 14  # four requests, 2 choices x 7 tokens each
    assert result["tokens_per_second"] == round(56 / result["seconds"], 1)


@pytest.mark.slow
def test_a_server_that_ignores_n_fails_the_check(tmp_path):
    fake = FakeOpenAI(ignore_n=True)
    try:
        log = _eval_through(fake, tmp_path, "smoke_b")
    finally:
        fake.close()
    assert len(fake.requests) == 8  # the solver asked again for each missing attempt
    with pytest.raises(serving_smoke.SmokeError) as error:
        serving_smoke.check_log(log, "smoke_b")
    message = str(error.value)
    assert message.startswith("adapter smoke_b: 00576224: requests answered with [1, 1] choice(s), not one request "
                              "with 2 (n=2)")
    assert message.count("requests answered with [1, 1]") == 4
