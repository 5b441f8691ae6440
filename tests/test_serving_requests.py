"""Each printed or documented `inspect eval` line, turned into the request Inspect really sends: the
line is parsed by Inspect's own `eval` command and the model's request is built by Inspect's own
provider code, then caught by a fake OpenAI-compatible server on 127.0.0.1 (no vLLM, no network)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")
pytest.importorskip("openai")

from rps_evals.serving import QWEN3_SAMPLING, main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class _Server:
    """Answers /v1/models, adapter loads and chat completions; keeps each chat request body."""

    def __init__(self):
        import http.server
        import threading

        self.bodies: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, data: dict):
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):  # noqa: N802
                self._reply({"object": "list", "data": []})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self._reply({})
                server.bodies.append(body)
                self._reply({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "ok"}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    fake = _Server()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def sent_body(line: str, server: _Server) -> tuple[list[str], dict]:
    """(the `env ...` prefix, the JSON body of the request) of one `inspect eval` shell line."""
    from inspect_ai._cli.eval import eval_command as inspect_eval_cli
    from inspect_ai._util.config import parse_cli_args
    from inspect_ai._util.generate_config_args import config_from_locals
    from inspect_ai.model import GenerateConfig, get_model

    argv = shlex.split(line)
    at = argv.index("inspect")
    assert argv[at + 1] == "eval", line
    ctx = inspect_eval_cli.make_context("eval", argv[at + 2:])
    config = GenerateConfig(**config_from_locals(dict(ctx.params)))
    model = get_model(ctx.params["model"], config=config, base_url=server.url, api_key="EMPTY", memoize=False,
                      **parse_cli_args(ctx.params["m"]))
    before = len(server.bodies)
    asyncio.run(model.generate("hi"))
    assert len(server.bodies) == before + 1
    return argv[:at], server.bodies[-1]


def assert_qwen3(body: dict, thinking: bool):
    sampling = QWEN3_SAMPLING[thinking]
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"]) == (
        sampling["temperature"], sampling["top_p"], 20, 0.0)
    assert body["chat_template_kwargs"] == {"enable_thinking": thinking}


@pytest.mark.parametrize("thinking", ["on", "off"])
def test_every_printed_inspect_line_sends_its_sampling(tmp_path, capsys, server, thinking):
    adapters = {}
    for name in ("rps", "eps"):
        adapters[name] = tmp_path / name
        adapters[name].mkdir()
        (adapters[name] / "adapter_config.json").write_text(json.dumps({"r": 16, "peft_type": "LORA"}))
    assert main(["--base", "Qwen/Qwen3-8B", *[f"--adapter={n}={p}" for n, p in adapters.items()],
                 "--thinking", thinking]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "inspect eval" in line]
    assert len(lines) == 4
    for line in lines:
        prefix, body = sent_body(line, server)
        assert_qwen3(body, thinking == "on")
        if "--model vllm/" in line:  # Inspect starts the server: an inherited VLLM_BASE_URL must not win
            assert prefix == ["env", "-u", "VLLM_BASE_URL"]
        else:  # relies on the server printed above, and says which
            assert prefix == ["env", "VLLM_BASE_URL=http://localhost:8000/v1", "VLLM_API_KEY=EMPTY"]
            assert body["model"] in adapters


def _doc_eval_lines(text: str, pwd: Path = Path("/nonexistent")) -> list[str]:
    """Each `inspect eval` shell command of a doc (continuation lines joined), with the shell
    variables it uses filled in: $SAMPLING as the doc defines it, loop variables as `rps`."""
    sampling = re.search(r"^SAMPLING=(\".*\")$", text, re.M)
    lines, raw = [], text.splitlines()
    for i, line in enumerate(raw):
        if "inspect eval " not in line or line.lstrip().startswith(("#", "`")) or "`" in line:
            continue
        command = line.strip()
        while command.endswith("\\"):
            i += 1
            command = command[:-1].rstrip() + " " + raw[i].strip()
        if sampling:  # unquoted $SAMPLING: the shell splits the value into words
            words = shlex.split(sampling.group(1))[0].split()
            command = command.replace("$SAMPLING", " ".join(shlex.quote(w) for w in words))
        command = re.sub(r"\$(adapter|name|arc)\b", "rps", command).replace("$PWD", str(pwd))
        lines.append(command.removesuffix(" &"))
    return lines


def test_the_readme_sampling_line_sends_top_k_20(server):
    """README's SAMPLING (thinking mode), as the shell expands it in its inspect eval lines."""
    lines = _doc_eval_lines((ROOT / "README.md").read_text())
    sampled = [line for line in lines if "--temperature" in line]
    assert len(sampled) == 2
    for line in sampled:
        _, body = sent_body(line, server)
        assert body["top_k"] == 20
        assert_qwen3(body, thinking=True)


@pytest.mark.parametrize("doc", ["docs/inspect.md", "docs/training.md"])
def test_the_docs_inspect_lines_send_their_sampling(doc, server, tmp_path):
    adapter = tmp_path / "runs" / "rps_qwen3_8b" / "stage2"  # the docs' $PWD/runs/... adapter
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "peft_type": "LORA"}))
    lines = [line for line in _doc_eval_lines((ROOT / doc).read_text(), tmp_path) if "--temperature" in line]
    assert lines, doc
    for line in lines:
        prefix, body = sent_body(line, server)
        assert_qwen3(body, thinking='"enable_thinking":true' in line)
        assert prefix == (["env", "-u", "VLLM_BASE_URL"] if "--model vllm/" in line
                          else ["env", "VLLM_BASE_URL=http://localhost:8000/v1", "VLLM_API_KEY=EMPTY"])


def test_provenance_records_the_top_k_that_was_sent():
    from rps_evals.provenance import sent_top_k

    body = {"top_k": 20, "min_p": 0.0}
    assert sent_top_k("openai-api/vllm/rps", None, body) == 20
    assert sent_top_k("vllm/Qwen/Qwen3-8B", 40, body) == 20
    assert sent_top_k("openai-api/vllm/rps", 20, None) is None  # --top-k alone is dropped there
    assert sent_top_k("hf/tiny", 20, None) == 20  # the hf provider passes config.top_k to generate()


def test_lora_ranks_every_supported_vllm_accepts():
    """vLLM 0.10 accepts --max-lora-rank 8, 16, 32, 64, 128, 256, 320 or 512 (later releases add 1):
    a rank-1 adapter is served with 8, not with a value the older server refuses."""
    from rps_train.train import VLLM_LORA_RANKS, vllm_max_lora_rank

    assert VLLM_LORA_RANKS == (8, 16, 32, 64, 128, 256, 320, 512)
    assert [vllm_max_lora_rank(r) for r in (1, 4, 8, 9, 300, 512)] == [8, 8, 8, 16, 320, 512]


def test_vllm_is_bounded_to_the_tested_releases():
    import tomllib

    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (vllm,) = [Requirement(r) for r in extras["serve"] if r.startswith("vllm")]
    assert all(vllm.specifier.contains(v) for v in ("0.10.0", "0.34.0"))
    assert not vllm.specifier.contains("0.35.0") and not vllm.specifier.contains("0.9.2")


def _paragraphs_with(word: str) -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found += [(doc.name, p) for p in doc.read_text().split("\n\n") if word in p]
    return found


def test_docs_name_ray_where_lm_eval_runs_data_parallel():
    paragraphs = _paragraphs_with("data_parallel_size")
    assert paragraphs
    for doc, paragraph in paragraphs:
        assert "pip install ray" in paragraph, doc


def test_docs_name_vllm_reasoning_field_of_both_releases():
    """vLLM 0.34 returns the thinking as `reasoning`; 0.10 as `reasoning_content`."""
    paragraphs = _paragraphs_with("reasoning_content")
    assert paragraphs
    for doc, paragraph in paragraphs:
        assert "`reasoning`" in paragraph, doc


def test_a_run_records_the_top_k_its_requests_carried(tmp_path, monkeypatch, server):
    """Through Inspect's openai-api provider: top_k in the body is recorded; --top-k alone (dropped
    from the request) is recorded as null."""
    from inspect_ai import eval as inspect_eval

    from rps_evals.arc1 import arc1
    from rps_evals.cli import main as rps_main

    monkeypatch.setenv("FAKE_API_KEY", "EMPTY")
    for name, settings, expected in (("body", {"extra_body": {"top_k": 20, "min_p": 0.0}}, 20),
                                     ("flag", {"top_k": 20}, None)):
        before = len(server.bodies)
        (log,) = inspect_eval(arc1(split="training", task_ids=["6150a2bd"], sandbox="local", attempts=1),
                              model=f"openai-api/fake/{name}", model_base_url=server.url,
                              log_dir=str(tmp_path / name), display="none", **settings)
        assert log.status == "success"
        assert server.bodies[before].get("top_k") == expected  # what the request carried
        assert rps_main(["report", log.location, "--out", str(tmp_path / f"run-{name}")]) == 0
        provenance = json.loads((tmp_path / f"run-{name}" / "results.json").read_text())["provenance"]
        assert provenance["generation"]["top_k"] == expected


def test_the_published_studys_inspect_lines_send_their_sampling(server, tmp_path, capsys):
    """`rps-train study --dry-run` of configs/study_qwen3_8b.yaml: its rejected-answer and evaluation
    lines (vLLM started by Inspect, and the study's own server) carry Qwen3's thinking sampling."""
    pytest.importorskip("yaml")
    from rps_train import study

    assert study.main(["--config", str(ROOT / "configs" / "study_qwen3_8b.yaml"), "--out", str(tmp_path / "s"),
                       "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("inspect eval") and "--temperature" in line]
    assert any("--model vllm/" in line for line in lines) and any("--model openai-api/" in line for line in lines)
    for line in lines:
        _, body = sent_body(line, server)
        assert_qwen3(body, thinking=True)
