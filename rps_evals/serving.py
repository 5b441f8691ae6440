"""The one serving recipe: vLLM command lines for evaluating LoRA adapters with Inspect or lm-eval.

README, docs/training.md, docs/inspect.md, docs/lm-eval.md and `rps-train study` show the lines
built here (a test compares them), so every front end serves with the same flags:
- `--max-model-len 40960`: Qwen3's full context. Inspect sets no max_tokens (an answer runs to the
  model length: a counted token-limit hit); lm-eval's default 15,360 new tokens plus the longest
  ARC prompt (about 25k tokens) fit in it.
- `--max-lora-rank 16`: the configs' `lora_r` (the trainer prints the value for other ranks).
- `--reasoning-parser qwen3` for Inspect only: the thinking comes back apart (vLLM 0.34's `reasoning`
  field; vLLM 0.10's `reasoning_content`: Inspect reads both) and the solver keeps it beside the
  text. lm-eval reads only the message text, so for it the server runs without a parser: the
  `<think>` block stays in the text, where the core's parser removes it and the token-limit count
  sees it.

Two ways for Inspect:
(a) Inspect starts vLLM itself for one adapter: `--model vllm/<base>:<adapter dir>`. The line
    starts with `env -u VLLM_BASE_URL`: with that variable set, Inspect's `vllm/` provider would
    silently use whatever server it names instead of starting its own;
(b) one `vllm serve --enable-lora --lora-modules rps=DIR eps=DIR` server, and each adapter
    evaluated by name through Inspect's OpenAI-compatible provider: `--model openai-api/vllm/rps`;
    each such line names the server it relies on (`env VLLM_BASE_URL=... VLLM_API_KEY=...`).
Qwen3's thinking switch is a chat-template argument, and `top_k` / `min_p` are not OpenAI request
fields: Inspect's OpenAI-compatible request (`openai_completion_params`, used by `vllm/` and
`openai-api/`) drops `--top-k`, so all three travel in the request body (`--extra-body`), where vLLM
reads them. The sampling settings are the ones the Qwen3 model card recommends for each mode.

    python -m rps_evals.serving --base Qwen/Qwen3-8B --adapter rps=runs/rps/adapter \\
        --adapter eps=runs/eps/adapter --thinking off     # prints the commands
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

DEFAULT_PORT = 8000
MAX_MODEL_LEN = 40960
MAX_LORA_RANK = 16
# The reasoning parser each front end needs (see the module docstring for why they differ).
REASONING_PARSER = {"inspect": "qwen3", "lm-eval": None}
SERVICE = "vllm"  # openai-api/<service>/<model>: Inspect reads <SERVICE>_BASE_URL and <SERVICE>_API_KEY
BASE_URL_VAR = "VLLM_BASE_URL"  # also read by Inspect's vllm/ provider: set, it starts no server

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


def vllm_serve_args(base: str, adapters: dict[str, str] | None = None, *, port: int = DEFAULT_PORT,
                    max_lora_rank: int = MAX_LORA_RANK, max_model_len: int = MAX_MODEL_LEN,
                    front_end: str = "inspect", api_key: str | None = None) -> list[str]:
    """(b) `vllm serve` for one base model (served under its own name) and every adapter under its
    name; the reasoning parser is the one `front_end` needs."""
    if front_end not in REASONING_PARSER:
        raise ValueError(f"front_end must be one of {', '.join(REASONING_PARSER)}, got {front_end!r}")
    args = ["vllm", "serve", base, "--port", str(port), "--max-model-len", str(max_model_len)]
    if adapters:
        args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank), "--max-loras", str(len(adapters)),
                 "--lora-modules", *[f"{name}={path}" for name, path in adapters.items()]]
    reasoning_parser = REASONING_PARSER[front_end]
    if api_key:
        args += ["--api-key", api_key]
    if reasoning_parser:
        args += ["--reasoning-parser", reasoning_parser]
    return args


def inspect_vllm_args() -> list[str]:
    """(a) The `-M` arguments Inspect passes to the vLLM server it starts: the same recipe as (b)."""
    return ["-M", f"max_model_len={MAX_MODEL_LEN}", "-M", f"reasoning_parser={REASONING_PARSER['inspect']}"]


def lmeval_vllm_model_args(base: str, adapter_dir: str | None = None) -> str:
    """lm-eval's in-process vLLM (`--model vllm --model_args ...`) with the same model length and rank."""
    args = f"pretrained={base}"
    if adapter_dir:
        args += f",lora_local_path={adapter_dir},max_lora_rank={MAX_LORA_RANK}"
    return args + f",max_model_len={MAX_MODEL_LEN}"


def lmeval_served_args(name: str, port: int = DEFAULT_PORT, tokenizer: str | None = None) -> str:
    """lm-eval's `local-chat-completions` model args for a name served by (b)."""
    args = (f"model={name},base_url=http://localhost:{port}/v1/chat/completions,num_concurrent=16,"
            "max_retries=5,timeout=3600")
    return args + (f",tokenizer={tokenizer}" if tokenizer else "")


def served_model(name: str) -> str:
    """(b) The Inspect `--model` for an adapter (or the base) served under `name`."""
    return f"openai-api/{SERVICE}/{name}"


def generate_args(thinking: bool, max_tokens: int | None = None) -> list[str]:
    """Inspect generation flags for Qwen3 with thinking on or off (vLLM-backed providers): temperature
    and top_p are OpenAI request fields; top_k, min_p and the thinking switch go in the body."""
    sampling = QWEN3_SAMPLING[thinking]
    body = {"top_k": sampling["top_k"], "min_p": sampling["min_p"],
            "chat_template_kwargs": {"enable_thinking": thinking}}
    args = ["--temperature", str(sampling["temperature"]), "--top-p", str(sampling["top_p"]),
            "--extra-body", json.dumps(body, separators=(",", ":"))]
    # No --max-tokens by default: vLLM then lets an answer run to the server's --max-model-len and
    # stops it there (a token_limit_hit); a max_tokens that does not fit beside a long prompt would
    # instead make vLLM refuse the request (an api_error).
    return args + (["--max-tokens", str(max_tokens)] if max_tokens else [])


def server_env(model: str, server_url: str | None = None, api_key: str = "EMPTY") -> list[str]:
    """The `env ...` prefix of an eval line: a `vllm/` model (Inspect starts the server) runs without
    VLLM_BASE_URL; a line that relies on a running server names it."""
    if model.startswith("vllm/"):
        return ["env", "-u", BASE_URL_VAR]
    if server_url:
        return ["env", f"{BASE_URL_VAR}={server_url}", f"{SERVICE.upper()}_API_KEY={api_key}"]
    return []


def eval_command(task: str, model: str, thinking: bool, task_args: dict[str, str] | None = None,
                 max_tokens: int | None = None, log_dir: str | None = None,
                 server_url: str | None = None) -> list[str]:
    """One `inspect eval` command line (with the server arguments when Inspect starts vLLM itself);
    `log_dir` keeps one model's logs apart from another's (Inspect's default is ./logs for all);
    `server_url`: the running server an `openai-api/` model is evaluated through."""
    args = [*server_env(model, server_url), "inspect", "eval", task, "--model", model]
    if model.startswith("vllm/"):
        args += inspect_vllm_args()
    for key, value in (task_args or {}).items():
        args += ["-T", f"{key}={value}"]
    if log_dir:
        args += ["--log-dir", log_dir]
    return args + generate_args(thinking, max_tokens)


def shell_line(argv: list[str]) -> str:
    """A command line for a shell; `$NAME` arguments stay unquoted so the shell expands them."""
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rps_evals.serving",
                                     description="Print the vLLM + Inspect commands for LoRA adapters.")
    parser.add_argument("--base", help="base model, e.g. Qwen/Qwen3-8B")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                        help="a LoRA adapter served under NAME (repeatable)")
    parser.add_argument("--task", default="rps_evals/arc2", help="Inspect task (default: %(default)s)")
    parser.add_argument("--thinking", choices=("on", "off"), default="on",
                        help="Qwen3 thinking mode and its sampling settings (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="vllm serve port (default: %(default)s)")
    parser.add_argument("--front-end", choices=tuple(REASONING_PARSER), default="inspect",
                        help="print the recipe for Inspect (default) or lm-eval")
    parser.add_argument("-T", dest="task_args", action="append", default=[], metavar="KEY=VALUE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--print-serve", action="store_true", help="print only the vllm serve command")
    mode.add_argument("--print-eval", action="store_true",
                      help="print only the inspect eval command for --model; it passes on its own arguments "
                      "(an openai-api/ model: the server in $VLLM_BASE_URL / $VLLM_API_KEY)")
    parser.add_argument("--model", help="with --print-eval: the Inspect model")
    parser.add_argument("--smoke", action="store_true",
                        help="vLLM + two LoRA adapters of a tiny model, end to end (rps_evals/serving_smoke.py)")
    parser.add_argument("--dry-run", action="store_true", help="with --smoke: print its commands, run nothing")
    parser.add_argument("--out", metavar="DIR", help="with --smoke: its working directory")
    args = parser.parse_args(argv)
    if args.dry_run and not args.smoke:
        parser.error("--dry-run goes with --smoke")
    if args.smoke:
        from rps_evals.serving_smoke import main as smoke

        return smoke(args.dry_run, args.out, args.port)
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
    serve = vllm_serve_args(args.base, adapters, port=args.port, front_end=args.front_end)
    if args.print_serve:  # for scripts (the regression workflow): the server requires $VLLM_API_KEY
        print(shell_line(vllm_serve_args(args.base, adapters, port=args.port, front_end=args.front_end,
                                         api_key="$VLLM_API_KEY")))
        return 0
    if args.front_end == "lm-eval":
        tasks = ("--tasks arc_prog --include_path \"$(python -m rps_evals.lmeval --tasks-path)\" "
                 "--apply_chat_template --confirm_run_unsafe_code")
        print("# (a) lm-eval starts vLLM in-process, one adapter at a time")
        for name, path in list(adapters.items()) or [("base", None)]:
            print(f"lm_eval --model vllm --model_args {lmeval_vllm_model_args(args.base, path)} {tasks} "
                  f"--batch_size auto --output_path results/{name} --log_samples")
        print("\n# (b) one server for every adapter (no --reasoning-parser: lm-eval reads only the text)")
        print(shell_line(serve))
        for name in list(adapters) or [args.base]:
            print(f"lm_eval --model local-chat-completions --model_args "
                  f"{lmeval_served_args(name, args.port, args.base)} {tasks} --gen_kwargs seed=None "
                  f"--output_path results/{name.replace('/', '_')} --log_samples")
        return 0
    print("# (a) Inspect starts vLLM with the adapter itself (logs/<name> per adapter)")
    for name, path in list(adapters.items()) or [("base", None)]:
        print(shell_line(eval_command(args.task, inspect_vllm_model(args.base, path), thinking, task_args,
                                      log_dir=f"logs/{name}")))
    print("\n# (b) one server for the base model and every adapter, then one eval per model name")
    print(shell_line(serve))
    url = f"http://localhost:{args.port}/v1"
    for name in list(adapters) or [args.base]:
        log_dir = f"logs/{name}" if adapters else "logs/base"
        print(shell_line(eval_command(args.task, served_model(name), thinking, task_args, log_dir=log_dir,
                                      server_url=url)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
