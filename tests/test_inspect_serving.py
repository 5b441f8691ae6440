"""The vLLM + LoRA command lines of docs/inspect.md, checked against Inspect itself (the real vLLM
run needs a GPU and is not part of CI)."""

from __future__ import annotations

import json
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
    assert (config.temperature, config.top_p, config.top_k) == (0.7, 0.8, 20)
    assert config.extra_body == {"chat_template_kwargs": {"enable_thinking": False}, "min_p": 0.0}


def test_cli_prints_both_ways(capsys):
    assert main(["--base", "Qwen/Qwen3-8B", "--adapter", "rps=/a/rps", "--adapter", "eps=/a/eps",
                 "--thinking", "off"]) == 0
    out = capsys.readouterr().out
    assert "--model vllm/Qwen/Qwen3-8B:/a/rps" in out and "--model vllm/Qwen/Qwen3-8B:/a/eps" in out
    assert "--lora-modules rps=/a/rps eps=/a/eps --api-key $VLLM_API_KEY" in out
    assert "--model openai-api/vllm/rps" in out and "--model openai-api/vllm/eps" in out
    assert main(["--print-eval", "--model", "openai-api/vllm/rps"]) == 0
    assert capsys.readouterr().out.rstrip().endswith('"$@"')
