"""Command lines for evaluating LoRA adapters through vLLM with Inspect (docs/inspect.md).

Two ways, both built here so the docs, the regression workflow and the tests agree:
(a) Inspect starts vLLM itself for one adapter: `--model vllm/<base>:<adapter dir>`;
(b) one `vllm serve --enable-lora --lora-modules rps=DIR eps=DIR` server, and each adapter
    evaluated by name through Inspect's OpenAI-compatible provider: `--model openai-api/vllm/rps`
    with VLLM_BASE_URL / VLLM_API_KEY set.
Qwen3's thinking switch is a chat-template argument, passed per request through `--extra-body`;
the sampling settings are the ones the Qwen3 model card recommends for each mode.

    python -m rps_evals.serving --base Qwen/Qwen3-8B --adapter rps=runs/rps/adapter \\
        --adapter eps=runs/eps/adapter --thinking off     # prints the commands
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

DEFAULT_PORT = 8000
SERVICE = "vllm"  # openai-api/<service>/<model>: Inspect reads <SERVICE>_BASE_URL and <SERVICE>_API_KEY

# Qwen3 model card: thinking mode T=0.6, top_p=0.95, top_k=20, min_p=0; non-thinking T=0.7, top_p=0.8.
QWEN3_SAMPLING = {
    True: {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
    False: {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
}


def parse_adapters(specs: list[str]) -> dict[str, str]:
    """`NAME=DIR` pairs in order; names must be unique and usable as vLLM model names."""
    adapters: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"adapter must be NAME=DIR, got {spec!r}")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"adapter name {name!r} must be letters, digits, - or _")
        if name in adapters:
            raise ValueError(f"adapter name {name!r} given twice")
        adapters[name] = path
    return adapters


def inspect_vllm_model(base: str, adapter_dir: str | None = None) -> str:
    """(a) The `--model` of Inspect's own vLLM server, with an adapter when given. The adapter path
    is made absolute: Inspect treats it as a local adapter only if it exists as written."""
    if adapter_dir is None:
        return f"vllm/{base}"
    return f"vllm/{base}:{Path(adapter_dir).expanduser().resolve()}"


def vllm_serve_args(base: str, adapters: dict[str, str], *, port: int = DEFAULT_PORT,
                    max_lora_rank: int = 64, max_model_len: int = 32768,
                    reasoning_parser: str | None = "qwen3", api_key: str | None = None) -> list[str]:
    """(b) `vllm serve` for one base model serving every adapter under its own name. With
    `reasoning_parser`, a reasoning model's thinking comes back apart from its answer."""
    if not adapters:
        raise ValueError("give at least one adapter")
    args = ["vllm", "serve", base, "--port", str(port), "--max-model-len", str(max_model_len),
            "--enable-lora", "--max-lora-rank", str(max_lora_rank), "--max-loras", str(len(adapters)),
            "--lora-modules", *[f"{name}={path}" for name, path in adapters.items()]]
    if api_key:
        args += ["--api-key", api_key]
    if reasoning_parser:
        args += ["--reasoning-parser", reasoning_parser]
    return args


def served_model(name: str) -> str:
    """(b) The Inspect `--model` for an adapter (or the base) served under `name`."""
    return f"openai-api/{SERVICE}/{name}"


def generate_args(thinking: bool, max_tokens: int | None = None) -> list[str]:
    """Inspect generation flags for Qwen3 with thinking on or off (vLLM-backed providers)."""
    sampling = QWEN3_SAMPLING[thinking]
    args = ["--temperature", str(sampling["temperature"]), "--top-p", str(sampling["top_p"]),
            "--top-k", str(sampling["top_k"]),
            "--extra-body", json.dumps({"chat_template_kwargs": {"enable_thinking": thinking},
                                        "min_p": sampling["min_p"]}, separators=(",", ":"))]
    # No --max-tokens by default: vLLM then lets an answer run to the server's --max-model-len and
    # stops it there (a token_limit_hit); a max_tokens that does not fit beside a long prompt would
    # instead make vLLM refuse the request (an api_error).
    return args + (["--max-tokens", str(max_tokens)] if max_tokens else [])


def eval_command(task: str, model: str, thinking: bool, task_args: dict[str, str] | None = None,
                 max_tokens: int | None = None) -> list[str]:
    """One `inspect eval` command line."""
    args = ["inspect", "eval", task, "--model", model]
    for key, value in (task_args or {}).items():
        args += ["-T", f"{key}={value}"]
    return args + generate_args(thinking, max_tokens)


def shell_line(argv: list[str]) -> str:
    """A command line for a shell; `$NAME` arguments stay unquoted so the shell expands them."""
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the vLLM + Inspect commands for LoRA adapters.")
    parser.add_argument("--base", help="base model, e.g. Qwen/Qwen3-8B")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR", help="repeatable")
    parser.add_argument("--task", default="rps_evals/arc2")
    parser.add_argument("--thinking", choices=("on", "off"), default="on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("-T", dest="task_args", action="append", default=[], metavar="KEY=VALUE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--print-serve", action="store_true", help="print only the vllm serve command")
    mode.add_argument("--print-eval", action="store_true",
                      help="print only the inspect eval command for --model; it passes on its own arguments")
    parser.add_argument("--model", help="with --print-eval: the Inspect model")
    args = parser.parse_args(argv)
    try:
        adapters = parse_adapters(args.adapter)
    except ValueError as exc:
        parser.error(str(exc))
    thinking = args.thinking == "on"
    task_args = dict(item.partition("=")[::2] for item in args.task_args)
    if args.print_eval:
        if not args.model:
            parser.error("--print-eval needs --model")
        print(shell_line(eval_command(args.task, args.model, thinking, task_args)) + ' "$@"')
        return 0
    if not args.base:
        parser.error("--base is required")
    serve = vllm_serve_args(args.base, adapters, port=args.port, api_key="$VLLM_API_KEY") if adapters else None
    if args.print_serve:
        if serve is None:
            parser.error("--print-serve needs at least one --adapter")
        print(shell_line(serve))
        return 0
    print("# (a) Inspect starts vLLM with the adapter itself")
    for path in list(adapters.values()) or [None]:
        print(shell_line(eval_command(args.task, inspect_vllm_model(args.base, path), thinking, task_args)))
    if serve:
        print("\n# (b) one server for every adapter, then one eval per adapter")
        print(shell_line(serve))
        print(f"export VLLM_BASE_URL=http://localhost:{args.port}/v1")
        for name in adapters:
            print(shell_line(eval_command(args.task, served_model(name), thinking, task_args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
