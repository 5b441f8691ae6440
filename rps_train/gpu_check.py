"""`rps-train gpu-check`: does the study's DPO step fit one GPU, and how fast is it?

    rps-train gpu-check --config configs/rps_qwen3_8b.yaml --lengths 8192,16384,32768 --steps 3 --out DIR
    rps-train gpu-check --config configs/rps_qwen3_8b.yaml --tiny --out DIR   # the same path on CPU

The training config's own settings (LoRA, dtype, attention, activation checkpointing, RPO alpha,
reference = the base with the adapter disabled, as in stage 1) go through TRL's DPOTrainer on a
randomly initialised model of the config's architecture (bundled numbers: no download) and on
synthetic pairs whose prompt + chosen and prompt + rejected are exactly each length. Per length it
records the peak accelerator memory, the step time and tokens/s, or the out-of-memory error; then,
at the longest length, each setting that can make it fit (`--variants`). Before anything runs it
prints the analytic estimate (rps_train.memory_estimate), so a machine without a GPU still learns
what will fit. Writes DIR/gpu_check.json and prints a table.

Steps are micro-steps: one batch of `per_device_train_batch_size` pairs, forward, backward and an
optimizer step (gradient accumulation only repeats them). Step times exclude the first step
(kernel selection, allocator warm-up) when there is more than one.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rps_train.memory_estimate import (BUNDLED, GIB, TINY_QWEN3, Architecture, StepSettings, estimate, settings_dict,
                                       table_unit)
from rps_train.memory_estimate import table as estimate_table
from rps_train.options import add_config_option, parse_with_config

FORMAT = "rps-train-gpu-check/1"
DEFAULT_LENGTHS = (8192, 16384, 32768)
TINY_LENGTHS = (64, 128)
# Word-level vocabulary of the synthetic tokenizer: one word is one token, so lengths are exact.
PAD, EOS = "<pad>", "<eos>"
SYNTHETIC_WORDS = 4096


class CheckError(ValueError):
    """Bad gpu-check input; printed as one line, exit 2."""


@dataclass
class GpuCheckArguments:
    """What gpu-check measures; the training settings come from the same --config as `rps-train train`."""

    out: str | None = field(default=None, metadata={"help": "directory for gpu_check.json (required)"})
    lengths: str | None = field(default=None, metadata={
        "help": "total tokens per sequence (prompt + response), comma-separated; default 8192,16384,32768 "
                "(64,128 with --tiny)"})
    steps: int = field(default=3, metadata={"help": "training steps per measurement (the first is warm-up)"})
    tiny: bool = field(default=False, metadata={
        "help": "run the same code path on CPU with the tiny Qwen3 shape (what CI runs)"})
    variants: str = field(default="auto", metadata={
        "help": "settings measured at the longest length: 'auto' (all that apply), 'none', or a comma-separated "
                "subset of " + ", ".join(("lora_dropout_0", "activation_offloading", "precompute_ref_log_probs",
                                           "liger_kernel", "padding_free"))})
    prompt_fraction: float = field(default=0.25, metadata={
        "help": "share of each synthetic sequence that is prompt (the LM head scores the rest)"})
    card_gib: float = field(default=78.0, metadata={
        "help": "usable memory of the card the estimate is checked against, GiB (an 80 GB H100 shows ~79)"})
    estimate_only: bool = field(default=False, metadata={"help": "print and write the estimate, measure nothing"})


# --------------------------------------------------------------------------------------------
# Inputs


def parse_lengths(text: str | None, tiny: bool) -> list[int]:
    if text is None:
        return list(TINY_LENGTHS if tiny else DEFAULT_LENGTHS)
    try:
        lengths = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise CheckError(f"--lengths must be comma-separated whole numbers, got {text!r}") from None
    if not lengths or lengths[0] < 8:
        raise CheckError(f"--lengths must be whole numbers of at least 8 tokens, got {text!r}")
    return lengths


def resolve_architecture(model_name_or_path: str | None, tiny: bool) -> Architecture:
    """The bundled numbers for the config's model (the tiny shape with --tiny); never a download."""
    if tiny:
        return TINY_QWEN3
    if model_name_or_path in BUNDLED:
        return BUNDLED[model_name_or_path]
    known = ", ".join(sorted({a.name for a in BUNDLED.values()}))
    raise CheckError(f"no bundled architecture for model_name_or_path {model_name_or_path!r} (known: {known}); "
                     "use --tiny for the CPU check")


def step_settings(model_args, training_args, check: GpuCheckArguments, arch: Architecture) -> StepSettings:
    """The estimate's view of the training config."""
    targets = model_args.lora_target_modules
    if targets is None or targets == "all-linear":
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

        targets = list(arch.linear_shapes()) if targets == "all-linear" else defaults["qwen3"]
    dtype = "float32" if check.tiny else (model_args.dtype or "float32")
    return StepSettings(
        lora_rank=model_args.lora_r,
        lora_targets=tuple(targets),
        lora_dropout=model_args.lora_dropout,
        weight_bytes=4 if dtype == "float32" else 2,
        batch_pairs=training_args.per_device_train_batch_size,
        activation_checkpointing=bool(training_args.activation_checkpointing),
        activation_offloading=bool(training_args.activation_offloading),
        precompute_ref_log_probs=bool(training_args.precompute_ref_log_probs),
        prompt_fraction=check.prompt_fraction,
    )


# --------------------------------------------------------------------------------------------
# Synthetic model and data


def synthetic_tokenizer(words: int = SYNTHETIC_WORDS):
    """A word-level tokenizer (w0 w1 ... one token each, split on spaces): a text of n words is n tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, **{f"w{i}": i + 2 for i in range(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)


def synthetic_pairs(length: int, count: int, prompt_fraction: float, seed: int, words: int = SYNTHETIC_WORDS):
    """`count` pairs whose prompt + chosen and prompt + rejected are each `length` tokens (EOS last)."""
    import datasets

    rng = random.Random(seed * 1_000_003 + length)
    prompt_len = max(1, int(length * prompt_fraction))
    response_len = length - prompt_len

    def text(n: int) -> str:
        return " ".join(f"w{rng.randrange(words)}" for _ in range(n))

    rows = [{"prompt": text(prompt_len), "chosen": " " + text(response_len - 1) + " " + EOS,
             "rejected": " " + text(response_len - 1) + " " + EOS} for _ in range(count)]
    return datasets.Dataset.from_list(rows)


def random_model(arch: Architecture, dtype: str, device: str, attn_implementation: str | None, seed: int):
    """A randomly initialised model of `arch`, built directly on `device`."""
    import torch
    from transformers import AutoModelForCausalLM

    config = arch.qwen3_config(pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, **kwargs)


# --------------------------------------------------------------------------------------------
# Settings that can make the longest length fit


@dataclass(frozen=True)
class Variant:
    name: str
    why: str
    apply: Callable[[Any, Any], tuple[Any, Any]] | None  # (training_args, model_args) -> both; None = skipped
    skip_reason: str | None = None
    estimate_change: dict[str, Any] | None = None  # the StepSettings fields it changes, where the estimate models it


def variants(tiny: bool) -> list[Variant]:
    """Each candidate, or the reason it cannot be measured with the installed TRL."""
    import importlib.util

    replace = dataclasses.replace
    liger = importlib.util.find_spec("liger_kernel") is not None
    return [
        Variant("lora_dropout_0", "no dropped-out input copy per adapted linear",
                lambda t, m: (t, replace(m, lora_dropout=0.0)), estimate_change={"lora_dropout": 0.0}),
        Variant("activation_offloading", "checkpointed activations wait in CPU memory",
                None if tiny else (lambda t, m: (replace(t, activation_offloading=True), m)),
                "TRL's activation offloading needs an accelerator" if tiny else None,
                estimate_change={"activation_offloading": True}),
        Variant("precompute_ref_log_probs", "the reference forward runs once before training, not every step",
                lambda t, m: (replace(t, precompute_ref_log_probs=True), m),
                estimate_change={"precompute_ref_log_probs": True}),
        Variant("liger_kernel", "Liger's RMSNorm/SwiGLU/RoPE kernels (TRL 1.16 refuses Liger's fused loss: "
                "its own chunked LM head replaces it)",
                (lambda t, m: (replace(t, use_liger_kernel=True), m)) if liger and not tiny else None,
                None if liger and not tiny else
                ("liger-kernel is not installed" if not liger else "Liger's kernels need a GPU")),
        Variant("padding_free", "no padding tokens", None,
                "TRL 1.16 disables padding_free for DPO (it warns and pads); equal-length synthetic pairs have "
                "no padding anyway"),
    ]


def pick_variants(spec: str, tiny: bool) -> list[Variant]:
    available = variants(tiny)
    if spec == "none":
        return []
    if spec == "auto":
        return available
    by_name = {v.name: v for v in available}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise CheckError(f"--variants: unknown {', '.join(unknown) or repr(spec)}; "
                         f"use auto, none or some of {', '.join(by_name)}")
    return [by_name[n] for n in names]


# --------------------------------------------------------------------------------------------
# Measuring


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_timer():
    """A TrainerCallback recording each step's wall time (after the device finished it)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            _synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _synchronize()
            self.seconds.append(time.perf_counter() - self._start)

    return StepTimer()


def measurement_args(training_args, out: Path, length: int, steps: int, name: str):
    """The config's training arguments for `steps` micro-steps at `length`, writing and logging nothing."""
    return dataclasses.replace(
        training_args, output_dir=str(out / "trainer"), run_name=f"gpu-check-{name}-{length}", max_length=length,
        max_steps=steps, num_train_epochs=1, gradient_accumulation_steps=1, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, logging_strategy="no", report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, push_to_hub=False)


def run_steps(arch: Architecture, length: int, training_args, model_args, check: GpuCheckArguments,
              device: str, dtype: str) -> dict[str, Any]:
    """Build the model and trainer, train `steps` steps, return times and peak memory."""
    import datasets
    import torch
    from transformers import PrinterCallback
    from trl import DPOTrainer, get_peft_config

    datasets.disable_progress_bars()
    words = min(SYNTHETIC_WORDS, arch.vocab_size - 2)  # every token id inside the model's vocabulary
    tokenizer = synthetic_tokenizer(words)
    pairs = synthetic_pairs(length, check.steps * training_args.per_device_train_batch_size,
                            check.prompt_fraction, training_args.seed, words)
    model = random_model(arch, dtype, device, model_args.attn_implementation, training_args.seed)
    timer = step_timer()
    trainer = DPOTrainer(model=model, args=training_args, train_dataset=pairs, processing_class=tokenizer,
                         peft_config=get_peft_config(model_args), callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # the table reports the run; no per-run metrics dict
    if len(trainer.train_dataset) != len(pairs):
        raise RuntimeError(f"TRL kept {len(trainer.train_dataset)} of {len(pairs)} synthetic pairs")
    cuda = device == "cuda"
    try:
        if cuda:  # the peak of the training steps, with the weights already in place
            torch.cuda.reset_peak_memory_stats()
        result = trainer.train()
        return {"step_seconds": timer.seconds, "train_loss": result.training_loss,
                "peak_allocated": torch.cuda.max_memory_allocated() if cuda else None,
                "peak_reserved": torch.cuda.max_memory_reserved() if cuda else None}
    finally:
        del trainer, model  # an OOM's traceback must not keep the model alive for the next measurement


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure(name: str, length: int, run: Callable[[], dict[str, Any]], estimate_bytes: int | None,
            batch_pairs: int) -> dict[str, Any]:
    """One measurement record: ok (memory, times, tokens/s), oom, or error, each with its message."""
    import torch

    record: dict[str, Any] = {"setting": name, "length": length, "estimate_peak_gib": _gib(estimate_bytes)}
    result = None
    try:
        result = run()
    except torch.OutOfMemoryError as exc:
        record.update(status="oom", message=str(exc).splitlines()[0][:300],
                      peak_allocated_gib=_gib(torch.cuda.max_memory_allocated()) if torch.cuda.is_available()
                      else None)
    except Exception as exc:  # a setting this TRL or card cannot run: recorded, and the next one is tried
        first = (str(exc).splitlines() or [""])[0]
        record.update(status="error", message=f"{type(exc).__name__}: {first}"[:300])
    free_memory()  # outside the except block: the traceback's frames no longer hold the step's tensors
    if result is None:
        return record
    seconds = result["step_seconds"]
    timed = seconds[1:] if len(seconds) > 1 else seconds
    mean = sum(timed) / len(timed) if timed else None
    tokens = 2 * batch_pairs * length
    record.update(status="ok", steps=len(seconds), step_seconds=[round(s, 4) for s in seconds],
                  mean_step_seconds=round(mean, 6) if mean else None,
                  tokens_per_second=round(tokens / mean, 1) if mean else None,
                  train_loss=result["train_loss"],
                  peak_allocated_gib=_gib(result["peak_allocated"]),
                  peak_reserved_gib=_gib(result["peak_reserved"]))
    return record


def _gib(n: int | None) -> float | None:
    return None if n is None else round(n / GIB, 6)


def _fmt(x: float) -> str:
    """GiB with one decimal; small (tiny-model) figures with two significant digits."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def fitting_summary(lengths: list[int], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What fits: the baseline at each length, and which settings make the longest length fit."""
    longest = max(lengths)
    baseline = {r["length"]: r["status"] for r in rows if r["setting"] == "baseline"}
    fitting = [n for n, s in sorted(baseline.items()) if s == "ok"]
    at_longest = [r["setting"] for r in rows if r["setting"] != "baseline" and r["status"] == "ok"]
    if baseline.get(longest) == "ok":
        advice = f"the config's settings fit {longest} tokens"
    elif at_longest:
        advice = f"{longest} tokens fit with: {', '.join(at_longest)}"
    elif fitting:
        advice = f"nothing measured fits {longest} tokens; set max_length to {max(fitting)} (measured to fit)"
    else:
        advice = "no measured length fits this card"
    return {"longest_length": longest, "baseline_fits": fitting, "settings_fitting_longest": at_longest,
            "advice": advice}


def measurement_table(rows: list[dict[str, Any]]) -> str:
    head = ["setting", "length", "status", "peak GiB", "estimate GiB", "step s", "tokens/s"]
    lines = [head]
    for r in rows:
        peak = r.get("peak_allocated_gib")
        lines.append([r["setting"], str(r["length"]), r["status"],
                      "n/a (cpu)" if peak is None and r["status"] == "ok" else ("" if peak is None else _fmt(peak)),
                      "" if r.get("estimate_peak_gib") is None else _fmt(r["estimate_peak_gib"]),
                      "" if r.get("mean_step_seconds") is None else f"{r['mean_step_seconds']:.3f}",
                      "" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:.0f}"])
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    notes = [f"  {r['setting']}: {r['status']}: {r['message']}" for r in rows if r.get("message")]
    return text + ("\n" + "\n".join(notes) if notes else "")


# --------------------------------------------------------------------------------------------
# The command


def run(rps, check: GpuCheckArguments, training_args, model_args, log=print) -> dict[str, Any]:
    """Estimate, then (with a GPU or --tiny) measure; write and return the report."""
    import torch

    from rps_train.train import ConfigError, set_rpo_loss

    if not check.out:
        raise CheckError("--out DIR is required (gpu_check.json is written there)")
    if check.steps < 1:
        raise CheckError(f"--steps must be at least 1, got {check.steps}")
    if not 0 <= check.prompt_fraction < 1:
        raise CheckError(f"--prompt_fraction must be in [0, 1), got {check.prompt_fraction}")
    if not check.card_gib > 0:
        raise CheckError(f"--card_gib must be positive, got {check.card_gib}")
    lengths = parse_lengths(check.lengths, check.tiny)
    chosen_variants = pick_variants(check.variants, check.tiny)
    arch = resolve_architecture(model_args.model_name_or_path, check.tiny)
    try:
        set_rpo_loss(rps, training_args)
    except ConfigError as exc:
        raise CheckError(str(exc)) from None
    model_args.use_peft = True
    settings = step_settings(model_args, training_args, check, arch)
    try:
        rows = estimate(arch, lengths, settings, check.card_gib)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    out = Path(check.out)
    log(f"# Estimate: {arch.name}, {arch.parameter_count():,} parameters, LoRA r={settings.lora_rank} on "
        f"{len(settings.lora_targets)} linears ({rows[0]['lora_parameters']:,}), {2 * settings.batch_pairs} "
        f"sequences per step, {'activation checkpointing' if settings.activation_checkpointing else 'no checkpointing'}"
        f", LoRA dropout {settings.lora_dropout:g}; {table_unit(rows)[0]} per item (peak = weights + LoRA + "
        "checkpoints + the largest of ref fwd, head bwd, layer bwd)")
    log(estimate_table(rows, check.card_gib))
    longest = max(lengths)
    variant_estimates = {}
    for v in chosen_variants:
        if v.estimate_change:
            changed = dataclasses.replace(settings, **v.estimate_change)
            variant_estimates[v.name] = estimate(arch, [longest], changed, check.card_gib)[0]
    report: dict[str, Any] = {
        "format": FORMAT,
        "architecture": dataclasses.asdict(arch),
        "tiny": check.tiny,
        "lengths": lengths,
        "config_max_length": training_args.max_length,
        "loss_type": list(training_args.loss_type),
        "loss_weights": training_args.loss_weights,
        "estimate_settings": settings_dict(settings),
        "card_gib": check.card_gib,
        "estimate": rows,
        "variant_estimates": variant_estimates,
        "measured": False,
        "measurements": [],
    }
    device = "cpu" if check.tiny else ("cuda" if torch.cuda.is_available() else None)
    if check.estimate_only or device is None:
        if device is None and not check.estimate_only:
            log("# No CUDA GPU here: nothing measured; the estimate above stands (run this on a GPU machine, "
                "or add --tiny to check the code path on CPU)")
        _write(out, report)
        return report

    import peft
    import transformers
    import trl

    dtype = "float32" if check.tiny else (model_args.dtype or "bfloat16")
    report.update(measured=True, device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                  device_total_gib=_gib(torch.cuda.get_device_properties(0).total_memory) if device == "cuda" else None,
                  versions={"torch": torch.__version__, "transformers": transformers.__version__,
                            "trl": trl.__version__, "peft": peft.__version__},
                  dtype=dtype, attn_implementation=model_args.attn_implementation)
    estimate_by_length = {r["length"]: r["bytes"]["peak_allocated"] for r in rows}
    measurements = report["measurements"]

    def attempt(name: str, length: int, t_args, m_args, estimate_bytes):
        args = measurement_args(t_args, out, length, check.steps, name)
        log(f"# measuring {name} at {length} tokens ({check.steps} steps) ...")
        record = measure(name, length, lambda: run_steps(arch, length, args, m_args, check, device, dtype),
                         estimate_bytes, args.per_device_train_batch_size)
        measurements.append(record)
        _write(out, report)  # a crash later keeps what was measured

    for length in lengths:
        attempt("baseline", length, training_args, model_args, estimate_by_length[length])
    for v in chosen_variants:
        if v.apply is None:
            measurements.append({"setting": v.name, "length": longest, "status": "skipped", "message": v.skip_reason})
            continue
        t_args, m_args = v.apply(training_args, model_args)
        est = variant_estimates.get(v.name)
        attempt(v.name, longest, t_args, m_args, est["bytes"]["peak_allocated"] if est else None)
    report["summary"] = fitting_summary(lengths, measurements)
    _write(out, report)
    log(f"# Measured on {report['device']} ({dtype}, {check.steps} steps each; step time excludes the first)")
    log(measurement_table(measurements))
    log(f"# {report['summary']['advice']}")
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def make_parser():
    from trl import DPOConfig, ModelConfig, TrlParser

    from rps_train.train import RPSArguments

    parser = TrlParser((RPSArguments, GpuCheckArguments, DPOConfig, ModelConfig), prog="rps-train gpu-check")
    add_config_option(parser, "training (the same file as `rps-train train`)")
    return parser


def _cpu_overrides(argv: list[str]) -> list[str]:
    """On CPU (or --tiny) the config's bf16 would stop TrainingArguments before anything runs."""
    import torch

    tiny = any(a == "--tiny" or a.startswith("--tiny=") for a in argv)
    if tiny or not torch.cuda.is_available():
        return argv + ["--use_cpu", "true", "--bf16", "false", "--fp16", "false"]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    try:
        rps, check, training_args, model_args = parse_with_config(parser, _cpu_overrides(argv), "training")
        run(rps, check, training_args, model_args)
    except (CheckError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
