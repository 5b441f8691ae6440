"""`python -m rps_evals.serving --smoke [--dry-run] [--out DIR]`: the serving recipe, end to end, on a tiny model.

On a machine with vLLM and a CUDA GPU: write a tiny random Qwen3 (`rps-train tiny-model`), train two
LoRA adapters on it with `rps-train train` (a few CPU steps each, so the adapters are files the
trainer really saved), start one `vllm serve` with both by the project's recipe (rps_evals.serving),
run `rps_evals/arc1` on 4 tasks through each adapter with 2 attempts (one request with n = 2), and
check from the Inspect logs that each adapter answered every task and that 2 choices came back per
request; print tokens/s. The model is random: this checks plumbing, never quality.

`--dry-run` prints the commands and needs neither vLLM nor a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rps_evals.serving import DEFAULT_PORT, SERVICE, eval_command, served_model, shell_line, vllm_serve_args

ADAPTERS = ("smoke_a", "smoke_b")
TASKS = ("00576224", "009d5c81", "00dbd492", "03560426")  # the first four ARC-AGI-1 evaluation tasks
ATTEMPTS = 2
LORA_RANK = 8
# The tiny model's own limit (rps_train/tiny.py): vLLM refuses a --max-model-len beyond it.
MAX_MODEL_LEN = 32768
MAX_TOKENS = 128  # a random model never stops by itself
SERVER_START_TIMEOUT = 900
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SmokeError(RuntimeError):
    """A smoke step failed; the message says which and why."""


@dataclass
class SmokePlan:
    """Every path and command of one smoke run."""

    work: Path
    port: int = DEFAULT_PORT

    @property
    def base(self) -> Path:
        return self.work / "tiny-qwen3"

    @property
    def data(self) -> Path:
        return self.work / "dpo-data"

    def adapter(self, name: str) -> Path:
        return self.work / name / "stage1"

    def model_command(self) -> list[str]:
        return ["rps-train", "tiny-model", "--out", str(self.base)]

    def train_command(self, name: str, seed: int) -> list[str]:
        """Stage 1 only, a few steps on CPU (the GPU stays free for vLLM); each seed gives its own adapter."""
        return ["rps-train", "train", "--model_name_or_path", str(self.base), "--data_dir", str(self.data),
                "--output_dir", str(self.work / name), "--schedule_name", name, "--stages", "1",
                "--stage2_reference", "base", "--validation_split", "0", "--dtype", "float32",
                "--lora_r", str(LORA_RANK), "--lora_alpha", str(2 * LORA_RANK), "--lora_dropout", "0",
                "--lora_target_modules", *LORA_MODULES, "--learning_rate", "1e-3", "--max_steps", "2",
                "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
                "--max_length", "1024", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
                "--use_cpu", "true", "--bf16", "false", "--activation_checkpointing", "false",
                "--seed", str(seed)]

    def serve_command(self) -> list[str]:
        adapters = {name: str(self.adapter(name).resolve()) for name in ADAPTERS}
        return vllm_serve_args(str(self.base.resolve()), adapters, port=self.port, max_lora_rank=LORA_RANK,
                               max_model_len=MAX_MODEL_LEN)

    def base_url(self) -> str:
        return f"http://localhost:{self.port}/v1"

    def log_dir(self, name: str) -> Path:
        return self.work / "logs" / name

    def eval_command(self, name: str) -> list[str]:
        # sandbox=local: a GPU machine need not run Docker, and a random model writes no real program.
        return eval_command("rps_evals/arc1", served_model(name), thinking=False,
                            task_args={"task_ids": ",".join(TASKS), "attempts": str(ATTEMPTS), "sandbox": "local"},
                            max_tokens=MAX_TOKENS, log_dir=str(self.log_dir(name)))

    def script(self) -> str:
        """The whole run as shell lines (what --dry-run prints)."""
        env = f"export {SERVICE.upper()}_BASE_URL={self.base_url()} {SERVICE.upper()}_API_KEY=EMPTY"
        return "\n".join([
            shell_line(self.model_command()),
            f"# write {len(PAIRS)} tiny DPO pairs to {self.data}/stage1 (rps_evals.serving_smoke.write_pairs)",
            *[shell_line(self.train_command(name, seed)) for seed, name in enumerate(ADAPTERS)],
            shell_line(self.serve_command()) + " &",
            f"# wait until {self.base_url()}/models lists {' and '.join(ADAPTERS)}",
            env,
            *[shell_line(self.eval_command(name)) for name in ADAPTERS],
            f"# check each log: {len(TASKS)} samples, each with {ATTEMPTS} choices from one request; tokens/s",
        ])


# Stage-1 pairs in the layout `rps-train data` writes; conversational, short, distinct task ids.
PAIRS = [
    {"prompt": [{"role": "user", "content": f"Example 1 input:\n[[{i}, 0]]\nExample 1 output:\n[[0, {i}]]"}],
     "chosen": [{"role": "assistant", "content": "Reasoning:\nswap\n\nPython program:\n```python\n"
                                                  "def transform(grid):\n    return [r[::-1] for r in grid]\n```"}],
     "rejected": [{"role": "assistant", "content": f"Reasoning:\nno idea {i}"}],
     "task_id": f"smoke{i:03d}"}
    for i in range(4)
]


def write_pairs(data_dir: Path) -> None:
    import datasets

    datasets.Dataset.from_list(PAIRS).save_to_disk(str(data_dir / "stage1"))


def missing_requirements() -> list[str]:
    """What this machine lacks for a real smoke run (empty when it can run)."""
    missing = []
    if shutil.which("vllm") is None and importlib.util.find_spec("vllm") is None:
        missing.append("vLLM is not installed (pip install -e '.[serve]'; GPU machines only)")
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = shutil.which("nvidia-smi") is not None
    if not gpu:
        missing.append("no CUDA GPU is visible (vLLM serves on a GPU)")
    for tool in ("rps-train", "inspect"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} is not on PATH (pip install -e '.[train,inspect]')")
    return missing


def check_log(path: Path, adapter: str) -> dict[str, Any]:
    """One adapter's Inspect log: every task answered, 2 choices per request; its output tokens and seconds."""
    from inspect_ai.log import read_eval_log

    log = read_eval_log(str(path))
    return check_samples(adapter, log.status, log.samples or [], log.stats)


def check_samples(adapter: str, status: str, samples: list, stats) -> dict[str, Any]:
    """The checks on a log's parts (kept apart from reading so they can be tested on any log)."""
    problems = []
    if status != "success":
        problems.append(f"the eval ended with status {status!r}")
    seen = sorted(str(s.id) for s in samples)
    if seen != sorted(TASKS):
        problems.append(f"samples {seen} instead of {sorted(TASKS)}")
    for sample in samples:
        if sample.error:
            problems.append(f"{sample.id}: {getattr(sample.error, 'message', sample.error)}")
        # one generate call per sample, answered with n choices: the prompt was prefilled once
        calls = [e for e in sample.events if e.event == "model"]
        served = [len(e.output.choices) for e in calls if e.output is not None]
        if served != [ATTEMPTS]:
            problems.append(f"{sample.id}: requests answered with {served} choice(s), not one request with "
                            f"{ATTEMPTS} (n={ATTEMPTS})")
        choices = sample.output.choices if sample.output else []
        empty = [i for i, c in enumerate(choices) if not (c.message.text or "").strip()]
        if empty:
            problems.append(f"{sample.id}: choice(s) {empty} have no text")
    if problems:
        raise SmokeError(f"adapter {adapter}: " + "; ".join(problems))
    output_tokens = sum(u.output_tokens for u in stats.model_usage.values())
    # the span of the model calls themselves (microsecond timestamps; the log's own start and end
    # are whole seconds, and a fast server answers 4 requests within one)
    calls = [e for sample in samples for e in sample.events if e.event == "model" and e.completed is not None]
    seconds = (max(e.completed for e in calls) - min(e.timestamp for e in calls)).total_seconds() if calls else 0.0
    return {"adapter": adapter, "samples": len(samples), "choices_per_request": ATTEMPTS,
            "output_tokens": output_tokens, "seconds": seconds,
            "tokens_per_second": round(output_tokens / seconds, 1) if seconds > 0 else None}


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    print(f"$ {shell_line(argv)}", flush=True)
    done = subprocess.run(argv, env=env)
    if done.returncode != 0:
        raise SmokeError(f"{what} failed (exit {done.returncode})")


def _wait_for_server(plan: SmokePlan, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeError(f"vllm serve exited with {server.returncode} before it answered (see its output above)")
        try:
            with urllib.request.urlopen(f"{plan.base_url()}/models", timeout=5) as response:
                served = {m["id"] for m in json.load(response)["data"]}
            if set(ADAPTERS) <= served:
                return
        except OSError:
            pass
        time.sleep(5)
    raise SmokeError(f"vllm serve did not list {', '.join(ADAPTERS)} within {SERVER_START_TIMEOUT} s")


def run(plan: SmokePlan) -> list[dict[str, Any]]:
    """The real smoke run; returns each adapter's figures (raises SmokeError at the first failure)."""
    plan.work.mkdir(parents=True, exist_ok=True)
    _run(plan.model_command(), "rps-train tiny-model")
    write_pairs(plan.data)
    for seed, name in enumerate(ADAPTERS):
        _run(plan.train_command(name, seed), f"training adapter {name}")
    print(f"$ {shell_line(plan.serve_command())} &", flush=True)
    server = subprocess.Popen(plan.serve_command(), start_new_session=True)
    try:
        _wait_for_server(plan, server)
        env = {**os.environ, f"{SERVICE.upper()}_BASE_URL": plan.base_url(), f"{SERVICE.upper()}_API_KEY": "EMPTY"}
        results = []
        for name in ADAPTERS:
            _run(plan.eval_command(name), f"inspect eval through {name}", env=env)
            logs = sorted(plan.log_dir(name).glob("*.eval"))
            if not logs:
                raise SmokeError(f"inspect eval through {name} wrote no log in {plan.log_dir(name)}")
            results.append(check_log(logs[-1], name))
        return results
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main(dry_run: bool, out: str | None, port: int = DEFAULT_PORT) -> int:
    """Entry point of `python -m rps_evals.serving --smoke`."""
    plan = SmokePlan(Path(out) if out else Path(tempfile.gettempdir()) / "rps-serving-smoke", port=port)
    if dry_run:
        print(plan.script())
        return 0
    missing = missing_requirements()
    if missing:
        print("error: the serving smoke cannot run here: " + "; ".join(missing)
              + " (--dry-run prints its commands)", file=sys.stderr)
        return 1
    try:
        results = run(plan)
    except SmokeError as exc:
        print(f"smoke FAILED: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r['adapter']}: {r['samples']} tasks x {r['choices_per_request']} choices per request, "
              f"{r['output_tokens']} output tokens in {r['seconds']:.2f} s = {r['tokens_per_second']} tokens/s")
    (plan.work / "smoke.json").write_text(json.dumps(results, indent=2) + "\n")
    print("smoke passed: both adapters answered every task with n=2")
    return 0
