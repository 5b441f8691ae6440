"""The vLLM + LoRA command lines of docs/inspect.md, checked against Inspect itself (the real vLLM
run needs a GPU and is not part of CI)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")
pytest.importorskip("openai")

from inspect_ai.model import get_model  # noqa: E402

from rps_evals.serving import (  # noqa: E402
    QWEN3_SAMPLING,
    eval_command,
    generate_args,
    inspect_vllm_model,
    main,
    parse_adapters,
    served_model,
    vllm_serve_args,
)

ROOT = Path(__file__).resolve().parents[1]


def test_inspect_starts_vllm_with_an_adapter(tmp_path):
    from inspect_ai.model._providers._vllm_lora import parse_vllm_model

    adapter = tmp_path / "runs" / "rps" / "stage2"
    adapter.mkdir(parents=True)
    model = inspect_vllm_model("Qwen/Qwen3-8B", str(adapter))
    assert model == f"vllm/Qwen/Qwen3-8B:{adapter}"
    base, lora = parse_vllm_model(model.removeprefix("vllm/"))
    assert base == "Qwen/Qwen3-8B" and lora is not None and Path(lora.path) == adapter
    assert inspect_vllm_model("Qwen/Qwen3-8B") == "vllm/Qwen/Qwen3-8B"


def test_one_server_two_adapters():
    adapters = parse_adapters(["rps=runs/rps_qwen3_8b/stage2", "eps=runs/eps_qwen3_8b/stage2"])
    args = vllm_serve_args("Qwen/Qwen3-8B", adapters, port=8011, api_key="k")
    assert args[:3] == ["vllm", "serve", "Qwen/Qwen3-8B"]
    at = args.index("--lora-modules")
    assert args[at + 1:at + 3] == ["rps=runs/rps_qwen3_8b/stage2", "eps=runs/eps_qwen3_8b/stage2"]
    assert "--enable-lora" in args and args[args.index("--max-loras") + 1] == "2"
    assert args[args.index("--port") + 1] == "8011" and args[args.index("--api-key") + 1] == "k"
    assert args[args.index("--reasoning-parser") + 1] == "qwen3"
    # each adapter is then an OpenAI-compatible model named after it
    for name in adapters:
        model = get_model(served_model(name), base_url="http://localhost:8011/v1", api_key="k")
        assert model.api.service_model_name() == name
        assert model.api.base_url == "http://localhost:8011/v1"
    for bad in (["rps"], ["=x"], ["a b=x"], ["rps=a", "rps=b"]):
        with pytest.raises(ValueError):
            parse_adapters(bad)


def test_qwen3_sampling_and_thinking_switch():
    for thinking in (True, False):
        args = generate_args(thinking)
        body = json.loads(args[args.index("--extra-body") + 1])
        assert body["chat_template_kwargs"] == {"enable_thinking": thinking}
        assert float(args[args.index("--temperature") + 1]) == QWEN3_SAMPLING[thinking]["temperature"]
        assert "--max-tokens" not in args
    assert generate_args(True, max_tokens=1000)[-2:] == ["--max-tokens", "1000"]


@pytest.mark.slow
def test_the_printed_eval_flags_are_valid_inspect_flags(tmp_path):
    """The generated command runs (with the replay model) and the settings reach the log."""
    argv = eval_command("rps_evals/arc1", "rps/replay", thinking=False,
                        task_args={"split": "training", "task_ids": "3c9b0459", "sandbox": "local"})
    proc = subprocess.run(argv + ["--log-dir", str(tmp_path), "--display", "none"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from inspect_ai.log import read_eval_log

    (log_file,) = tmp_path.glob("*.eval")
    config = read_eval_log(str(log_file), header_only=True).plan.config
    assert (config.temperature, config.top_p, config.top_k) == (0.7, 0.8, None)
    assert config.extra_body == {"top_k": 20, "min_p": 0.0, "chat_template_kwargs": {"enable_thinking": False}}


def test_cli_prints_both_ways(capsys):
    assert main(["--base", "Qwen/Qwen3-8B", "--adapter", "rps=/a/rps", "--adapter", "eps=/a/eps",
                 "--thinking", "off"]) == 0
    out = capsys.readouterr().out
    assert "--model vllm/Qwen/Qwen3-8B:/a/rps" in out and "--model vllm/Qwen/Qwen3-8B:/a/eps" in out
    assert ("vllm serve Qwen/Qwen3-8B --port 8000 --max-model-len 40960 --enable-lora --max-lora-rank 16 "
            "--max-loras 2 --lora-modules rps=/a/rps eps=/a/eps --reasoning-parser qwen3\n") in out
    assert "--model vllm/Qwen/Qwen3-8B:/a/rps -M max_model_len=40960 -M reasoning_parser=qwen3" in out
    assert "--model openai-api/vllm/rps" in out and "--model openai-api/vllm/eps" in out
    assert main(["--print-eval", "--model", "openai-api/vllm/rps"]) == 0
    assert capsys.readouterr().out.rstrip().endswith('"$@"')
    # scripts get a server that requires the key
    assert main(["--print-serve", "--base", "B", "--adapter", "candidate=/a/c"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("--lora-modules candidate=/a/c --api-key $VLLM_API_KEY "
                                                      "--reasoning-parser qwen3")
    # lm-eval: the same server without the reasoning parser, the same length and rank in-process
    assert main(["--base", "Qwen/Qwen3-8B", "--adapter", "rps=/a/rps", "--front-end", "lm-eval"]) == 0
    out = capsys.readouterr().out
    assert ("vllm serve Qwen/Qwen3-8B --port 8000 --max-model-len 40960 --enable-lora --max-lora-rank 16 "
            "--max-loras 1 --lora-modules rps=/a/rps\n") in out
    assert "pretrained=Qwen/Qwen3-8B,lora_local_path=/a/rps,max_lora_rank=16,max_model_len=40960 " in out
    assert "--reasoning-parser qwen3" not in out


def test_cli_prog_and_one_log_dir_per_model(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m rps_evals.serving ")
    assert main(["--base", "Qwen/Qwen3-8B", "--adapter", "rps=/a/rps", "--adapter", "eps=/a/eps"]) == 0
    evals = [line.split() for line in capsys.readouterr().out.splitlines() if "inspect eval" in line]
    log_dirs = {argv[argv.index("--model") + 1]: argv[argv.index("--log-dir") + 1] for argv in evals}
    assert log_dirs == {"vllm/Qwen/Qwen3-8B:/a/rps": "logs/rps", "vllm/Qwen/Qwen3-8B:/a/eps": "logs/eps",
                        "openai-api/vllm/rps": "logs/rps", "openai-api/vllm/eps": "logs/eps"}
    assert main(["--base", "Qwen/Qwen3-8B"]) == 0
    evals = [line.split() for line in capsys.readouterr().out.splitlines() if "inspect eval" in line]
    assert [argv[argv.index("--log-dir") + 1] for argv in evals] == ["logs/base", "logs/base"]


def test_docs_inspect_started_vllm_line_is_the_built_one():
    """docs/inspect.md's (a) command is what `python -m rps_evals.serving --thinking on` prints for rps."""
    (line,) = [c for c in _doc_commands((ROOT / "docs/inspect.md").read_text(), "env -u VLLM_BASE_URL inspect eval ")
               if "--model vllm/Qwen/Qwen3-8B:" in c]
    model = "vllm/Qwen/Qwen3-8B:$PWD/runs/rps_qwen3_8b/stage2"
    built = eval_command("rps_evals/arc2", model, thinking=True, log_dir="logs/rps")
    assert shlex.split(line) == built


def _doc_commands(text: str, start: str) -> list[str]:
    """Each shell command of `text` that starts with `start`, continuation lines joined."""
    commands, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(start):
            command = line.strip()
            while command.endswith("\\"):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            commands.append(command.removesuffix(" &").strip())
    return commands


@pytest.mark.parametrize("doc", ["README.md", "docs/training.md", "docs/inspect.md", "docs/lm-eval.md"])
def test_the_docs_show_the_one_serving_recipe(doc):
    """Every `vllm serve` line of the docs is the recipe rps_evals.serving builds for its own model
    and adapters, for Inspect or (no reasoning parser) for lm-eval; every lm-eval and Inspect-started
    vLLM uses the same model length and LoRA rank."""
    text = (ROOT / doc).read_text()
    serves = _doc_commands(text, "vllm serve ")
    assert serves, f"{doc} shows no vllm serve line"
    for line in serves:
        argv = line.split()
        adapters = {}
        if "--lora-modules" in argv:
            at = argv.index("--lora-modules") + 1
            while at < len(argv) and not argv[at].startswith("--"):
                name, _, path = argv[at].partition("=")
                adapters[name] = path
                at += 1
        front_end = "inspect" if "--reasoning-parser" in argv else "lm-eval"
        assert line == " ".join(vllm_serve_args(argv[2], adapters, front_end=front_end)), (doc, line)
        if doc == "docs/lm-eval.md":
            assert front_end == "lm-eval", "lm-eval reads only the text: no reasoning parser"
    import re

    assert set(re.findall(r"max_model_len=(\d+)", text)) <= {"40960"}
    assert set(re.findall(r"max_lora_rank=(\d+)", text)) <= {"16"}
    assert set(re.findall(r"--max-model-len (\d+)", text)) <= {"40960"}


# ---- reasoning kept: a fake OpenAI-compatible server on 127.0.0.1 --------------------------------

class _FakeServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers every request with
    `n` choices built by `reply(index)` (a message dict) and records the requests it got."""

    def __init__(self, reply, finish_reason: str = "stop"):
        import http.server
        import threading

        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                choices = [{"index": i, "message": {"role": "assistant", **reply(i)},
                            "finish_reason": finish_reason} for i in range(body.get("n") or 1)]
                data = json.dumps({"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"],
                                   "choices": choices,
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

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


PROGRAM = "Python program:\n```python\ndef transform(grid):\n    return grid\n```"


def _run_through(server: _FakeServer, tmp_path, monkeypatch):
    """rps_evals/arc1 on one task, 2 attempts, through Inspect's openai-api provider at `server`."""
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.counts import SCORER_NAME

    monkeypatch.setenv("FAKE_BASE_URL", server.url)
    monkeypatch.setenv("FAKE_API_KEY", "EMPTY")
    (log,) = inspect_eval(arc1(split="training", task_ids=["6150a2bd"], sandbox="local"),
                          model=f"openai-api/fake/small-{server.httpd.server_address[1]}",  # Inspect caches models by name
                          model_base_url=server.url, log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success", (log.error, [s.error for s in log.samples or []])
    (sample,) = log.samples
    return sample.store["rps_evals:attempts"], sample.scores[SCORER_NAME].metadata["attempts"], log


def test_reasoning_content_is_kept(tmp_path, monkeypatch):
    """vLLM with --reasoning-parser returns the thinking as `reasoning_content`; Inspect makes it a
    ContentReasoning part that `.text` leaves out. The solver keeps it beside the text."""
    reply = lambda i: {"content": f"answer {i}\n\n{PROGRAM}", "reasoning_content": f"thinking hard, attempt {i}"}  # noqa: E731
    with _FakeServer(reply) as server:
        stored, records, log = _run_through(server, tmp_path, monkeypatch)
    assert [r["reasoning"] for r in stored] == ["thinking hard, attempt 0", "thinking hard, attempt 1"]
    assert [r["completion"] for r in stored] == [f"answer 0\n\n{PROGRAM}", f"answer 1\n\n{PROGRAM}"]
    # the scored records (what `rps-evals report` and `rps-train data` read) keep both
    assert [(r["reasoning"], r["completion"]) for r in records] == [(s["reasoning"], s["completion"]) for s in stored]
    assert server.requests[0]["n"] == 2  # one request for both attempts

    from rps_evals.reports.readers import read_front_end_run

    _, read_back, _, _ = read_front_end_run(log.location)
    assert [r.reasoning for r in read_back] == ["thinking hard, attempt 0", "thinking hard, attempt 1"]


def test_think_tags_in_the_text_are_kept(tmp_path, monkeypatch):
    """A server without a reasoning parser leaves <think>...</think> in the text; Inspect moves it into a
    ContentReasoning part too. An answer cut off while thinking has reasoning and no text at all."""
    reply = lambda i: {"content": f"<think>step by step {i}</think>{PROGRAM}" if i == 0  # noqa: E731
                       else "<think>still going when the limit came"}
    with _FakeServer(reply, finish_reason="length") as server:
        stored, records, _ = _run_through(server, tmp_path, monkeypatch)
    first, second = stored
    assert first["reasoning"] == "step by step 0" and first["completion"] == PROGRAM
    assert "still going when the limit came" in (second["reasoning"] or "") + (second["completion"] or "")
    assert [r["stop_reason"] for r in records] == ["max_tokens", "max_tokens"]

    from rps_train.data import normalize_rejected, reasoning_section

    texts = [normalize_rejected(s["completion"], 1, s["reasoning"]) for s in stored]
    assert reasoning_section(texts[0]) == "step by step 0"
    assert reasoning_section(texts[1]) == "still going when the limit came"
