"""Two-stage DPO + LoRA training for RPS and EPS: a thin layer over TRL's DPOTrainer and PEFT.

Stage 1 trains a fresh LoRA adapter on the base model with the stage-1 data at `learning_rate`.
Stage 2 loads the stage-1 adapter (trainable) and continues on the stage-2 data with a fresh
optimizer and a fresh cosine schedule at `stage2_lr_ratio x learning_rate` (RPS 0.1, EPS 1.0).
RPO alpha a is TRL's `loss_type=["sigmoid", "sft"]`, `loss_weights=[1, a]`. The stage-2 reference
model (`stage2_reference`: the stage-1 model, TRL's default for a PEFT model, or the base) must
be chosen explicitly and is recorded in the run manifest.

Configuration is TRL's: one YAML file (`--config`) whose keys are fields of `RPSArguments`
(below), `trl.DPOConfig` (training arguments: `learning_rate` is stage 1's) and `trl.ModelConfig`
(base model and LoRA); any field can be overridden on the command line. Works under
`accelerate launch` (DDP or FSDP) unchanged.

Outputs under `output_dir`: `stage1/` and `stage2/` (each a PEFT LoRA adapter that
`vllm serve --lora-modules` loads, plus `log_history.json` and `rps_stage.json`) and
`manifest.json` (config, data manifest hash, stage-2 reference, learning rates, adapter hashes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rps_train.options import add_config_option, parse_with_config

FORMAT = "rps-train-run/1"
REFERENCES = ("stage1", "base")
# The --max-lora-rank values every supported vLLM accepts (0.10 refuses 1; later releases add it).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class ConfigError(ValueError):
    """A run that must not start; raised before any model is loaded or trained."""


@dataclass
class RPSArguments:
    """The RPS/EPS-specific settings; everything else is a DPOConfig or ModelConfig field."""

    data_dir: str | None = field(default=None, metadata={"help": "`rps-train data` output (stage1/, stage2/)"})
    schedule_name: str = field(default="rps", metadata={"help": "run name; also the served adapter name"})
    stage2_lr_ratio: float = field(default=0.1, metadata={"help": "stage-2 LR / stage-1 LR: RPS 0.1, EPS 1.0"})
    stage2_reference: str | None = field(
        default=None, metadata={"help": "stage-2 DPO reference: 'stage1' (TRL's default) or 'base'; required"})
    rpo_alpha: float = field(default=1.0, metadata={"help": "weight of the SFT (NLL) term on chosen; 0 = none"})
    validation_split: float = field(default=0.01, metadata={"help": "fraction of each stage held out for eval"})
    stage1_adapter: str | None = field(
        default=None, metadata={"help": "reuse this stage-1 adapter (e.g. RPS's, for EPS) instead of training one"})
    stages: str = field(default="1,2", metadata={"help": "stages to run: '1,2', '1' or '2'"})
    resume: bool = field(default=False, metadata={
        "help": "resume an interrupted run: a stage that finished (its rps_stage.json matches) is kept, an "
                "interrupted one continues from its last checkpoint (save_strategy must write checkpoints)"})
    inspect_task: str = field(default="rps_evals/arc2", metadata={"help": "Inspect task in printed commands"})


# --------------------------------------------------------------------------------------------
# Checks that run before anything is trained


def _stages(rps: RPSArguments) -> list[int]:
    try:
        stages = sorted({int(s) for s in rps.stages.split(",") if s.strip()})
    except ValueError:
        stages = []
    if not stages or not set(stages) <= {1, 2}:
        raise ConfigError(f"stages must be '1,2', '1' or '2', got {rps.stages!r}")
    return stages


def check_adapter_dir(path: str | Path, what: str) -> dict[str, Any]:
    """A LoRA adapter directory vLLM can serve: plain LoRA, no modules_to_save; returns its config."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    missing = [f for f in ADAPTER_FILES if not (path / f).exists()]
    if missing:
        raise ConfigError(f"{what} {str(path)!r} is not a PEFT adapter (missing {', '.join(missing)})")
    config = json.loads((path / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{what} {str(path)!r} is a {config.get('peft_type')} adapter, not LoRA")
    if config.get("modules_to_save"):
        raise ConfigError(f"{what} {str(path)!r} has modules_to_save={config['modules_to_save']}; vLLM cannot serve it")
    return config


def check_model_args(model_args) -> None:
    """LoRA settings vLLM can serve: no DoRA, no extra trained modules, no target_parameters."""
    if model_args.model_name_or_path is None:
        raise ConfigError("set model_name_or_path (the base model, e.g. Qwen/Qwen3-8B)")
    if model_args.lora_modules_to_save:
        raise ConfigError("lora_modules_to_save must be empty: vLLM loads only LoRA weights")
    if model_args.use_dora:
        raise ConfigError("use_dora is not served by vLLM's LoRA support; use plain LoRA")
    if model_args.lora_target_parameters:
        raise ConfigError("lora_target_parameters is not supported here; use lora_target_modules")
    model_args.use_peft = True  # this trainer is LoRA-only


def set_rpo_loss(rps: RPSArguments, training_args) -> None:
    """RPO alpha as TRL 1.16 spells it: DPO sigmoid loss plus alpha x NLL of the chosen response."""
    if list(training_args.loss_type) not in (["sigmoid"], ["sigmoid", "sft"]):
        raise ConfigError(f"loss_type {training_args.loss_type} is not DPO/RPO; set rpo_alpha instead")
    if rps.rpo_alpha < 0:
        raise ConfigError("rpo_alpha must be >= 0")
    if rps.rpo_alpha > 0:
        training_args.loss_type = ["sigmoid", "sft"]
        training_args.loss_weights = [1.0, float(rps.rpo_alpha)]
    else:
        training_args.loss_type = ["sigmoid"]
        training_args.loss_weights = None


def load_stage_data(data_dir: str | Path, stage: str, validation_split: float, seed: int):
    """(train, eval or None, task ids) of one stage; the eval part is `validation_split` of it (>= 1 pair)."""
    import datasets

    path = Path(data_dir) / stage
    if not path.exists():
        raise ConfigError(f"{stage} data {str(path)!r} does not exist (build it with `rps-train data`)")
    try:
        ds = datasets.load_from_disk(str(path), keep_in_memory=True)  # no cache files in the data dir
    except Exception as exc:
        raise ConfigError(f"{stage} data {str(path)!r} cannot be loaded: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise ConfigError(f"{stage} data {str(path)!r} is a DatasetDict; expected one Dataset of pairs")
    missing = [c for c in ("prompt", "chosen", "rejected", "task_id") if c not in ds.column_names]
    if missing:
        raise ConfigError(f"{stage} data {str(path)!r} lacks column(s) {', '.join(missing)}")
    if len(ds) == 0:
        raise ConfigError(f"{stage} data {str(path)!r} has no pairs")
    task_ids = set(ds["task_id"])
    ds = ds.select_columns(["prompt", "chosen", "rejected"])
    if not 0 <= validation_split < 1:
        raise ConfigError("validation_split must be in [0, 1)")
    if validation_split == 0:
        return ds, None, task_ids
    n_eval = max(1, round(len(ds) * validation_split))
    if n_eval >= len(ds):
        raise ConfigError(f"{stage} data has {len(ds)} pairs: too few to hold out {n_eval} for validation")
    split = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"], task_ids


def _data_manifest_hash(data_dir: str | Path) -> str | None:
    path = Path(data_dir) / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# --------------------------------------------------------------------------------------------
# Adapters


def adapter_fingerprint(state: dict) -> str:
    """SHA-256 of an adapter's tensors (names as saved by PEFT, values as float32)."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def saved_adapter_fingerprint(path: str | Path) -> str:
    from safetensors.torch import load_file

    return adapter_fingerprint(load_file(str(Path(path) / "adapter_model.safetensors")))


def live_adapter_fingerprint(model) -> str:
    """Fingerprint of the trainable `default` adapter of a (not yet sharded) PeftModel."""
    from peft import get_peft_model_state_dict

    return adapter_fingerprint(get_peft_model_state_dict(model, adapter_name="default"))


def vllm_max_lora_rank(rank: int) -> int:
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(f"LoRA rank {rank} is above vLLM's maximum {VLLM_LORA_RANKS[-1]}")


def commands(base_model: str, name: str, adapter: Path, rank: int, inspect_task: str) -> str:
    """The vLLM and Inspect command lines that serve and evaluate `adapter` (built by the core's
    `rps_evals.serving`, so they match the docs and the regression workflow)."""
    import shlex

    from rps_evals.serving import DEFAULT_PORT, eval_command, inspect_vllm_model, served_model, vllm_serve_args

    adapter_dir = str(Path(adapter).resolve())
    return "\n".join([
        "# Serve the adapter with vLLM (put the other schedule's adapter, e.g. eps=DIR, in the same --lora-modules):",
        shlex.join(vllm_serve_args(base_model, {name: adapter_dir}, max_lora_rank=vllm_max_lora_rank(rank))),
        "# Evaluate it through that server with Inspect:",
        shlex.join(eval_command(inspect_task, served_model(name), thinking=True,
                                server_url=f"http://localhost:{DEFAULT_PORT}/v1")),
        "# or let Inspect start vLLM with the adapter itself (no VLLM_BASE_URL, or it would use that server):",
        shlex.join(eval_command(inspect_task, inspect_vllm_model(base_model, adapter_dir), thinking=True)),
        f"# then: rps-evals report <log> --out runs/eval-{name}; rps-evals compare runs/eval-rps runs/eval-eps",
    ])


# --------------------------------------------------------------------------------------------
# Training


def _stage_args(training_args, output_dir: Path, learning_rate: float, run_name: str):
    """Training arguments of one stage: same settings, its own LR and output directory."""
    return dataclasses.replace(training_args, output_dir=str(output_dir), learning_rate=learning_rate,
                               run_name=run_name)


def _load_base(model_args):
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"revision": model_args.model_revision}
    if model_args.dtype not in (None, "auto"):
        import torch

        kwargs["dtype"] = getattr(torch, model_args.dtype)
    elif model_args.dtype == "auto":
        kwargs["dtype"] = "auto"
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)


def _count_truncated(dataset, max_length: int | None) -> int:
    """Pairs whose prompt + chosen or prompt + rejected exceeds max_length (TRL cuts their end)."""
    if max_length is None or dataset is None or len(dataset) == 0 or "prompt_ids" not in dataset.column_names:
        return 0
    lengths = dataset.map(
        lambda ex: {"_n": len(ex["prompt_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))},
        remove_columns=dataset.column_names)["_n"]
    return sum(n > max_length for n in lengths)


def _last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


def train_stage(stage: int, training_args, model_args, train_ds, eval_ds, tokenizer,
                init_adapter: Path | None = None, reference: str | None = None,
                callbacks: Sequence = (), resume: bool = False) -> dict[str, Any]:
    """Train one stage and save its adapter to training_args.output_dir; returns its record."""
    from rps_evals.versions import require_supported

    for library in ("trl", "peft", "transformers"):  # stage 2 relies on TRL's "ref" adapter
        require_supported(library)
    from peft import PeftModel
    from trl import DPOTrainer, get_peft_config

    out = Path(training_args.output_dir)
    model = _load_base(model_args)
    if stage == 1:
        peft_config = get_peft_config(model_args)
    else:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        peft_config = None
    trainer = DPOTrainer(model=model, args=training_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    # TRL drops pairs whose prompt alone reaches max_length (keep_start truncation) without a word.
    kept = len(trainer.train_dataset)
    kept_eval = len(trainer.eval_dataset) if eval_ds is not None else 0
    if kept == 0:
        raise ConfigError(f"stage {stage}: all {len(train_ds)} training pairs have a prompt of at least "
                          f"max_length={training_args.max_length} tokens and TRL drops them; raise max_length "
                          "(ARC prompts run to several thousand tokens)")
    peft_model = trainer.model
    if stage == 2:
        # TRL copied the loaded adapter to a frozen "ref" adapter: the stage-1 model is the reference.
        if "ref" not in peft_model.peft_config:
            raise RuntimeError("TRL did not create the 'ref' adapter; cannot set the stage-2 reference")
        if reference == "base":  # without "ref", TRL disables the adapter for reference log-probs
            peft_model.delete_adapter("ref")
            peft_model.set_adapter("default")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    if not trainable or any(".default." not in n for n in trainable):
        raise RuntimeError(f"unexpected trainable parameters: {trainable[:5]}")
    initial = live_adapter_fingerprint(peft_model)
    record: dict[str, Any] = {
        "stage": stage,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "loss_type": list(training_args.loss_type),
        "loss_weights": training_args.loss_weights,
        "reference": "base" if stage == 1 else reference,
        "init_adapter": str(init_adapter) if init_adapter else None,
        "initial_adapter_sha256": initial,
        "pairs_before_filter": len(train_ds),
        "train_pairs": kept,  # what was trained on, after TRL's filter
        "dropped_pairs": len(train_ds) - kept,  # prompt >= max_length
        "eval_pairs": kept_eval,
        "dropped_eval_pairs": (len(eval_ds) - kept_eval) if eval_ds is not None else 0,
        "max_length": training_args.max_length,
        "truncated_pairs": _count_truncated(trainer.train_dataset, training_args.max_length),
    }
    if trainer.accelerator.is_main_process:
        print(f"stage {stage}: training on {kept} of {len(train_ds)} pairs ({record['dropped_pairs']} dropped by "
              f"TRL: prompt >= max_length={training_args.max_length}); {kept_eval} eval pairs "
              f"({record['dropped_eval_pairs']} dropped)", file=sys.stderr)
        if record["truncated_pairs"]:
            print(f"warning: stage {stage}: {record['truncated_pairs']} training pair(s) exceed max_length="
                  f"{training_args.max_length} and are cut at the end", file=sys.stderr)

    checkpoint = _last_checkpoint(out) if resume else None
    record["resumed_from"] = checkpoint
    if checkpoint and trainer.accelerator.is_main_process:
        print(f"stage {stage}: resuming from {checkpoint}", file=sys.stderr)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(out))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        # PEFT saves every adapter it holds; vLLM wants only the trained one at the top level.
        shutil.rmtree(out / "ref", ignore_errors=True)
        config = check_adapter_dir(out, f"stage-{stage} adapter")
        record.update(
            adapter=str(out),
            lora_rank=config["r"],
            lora_alpha=config["lora_alpha"],
            target_modules=sorted(config["target_modules"]),
            adapter_sha256=saved_adapter_fingerprint(out),
            global_steps=trainer.state.global_step,
            train_loss=result.training_loss,
            peak_learning_rate=max((e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e),
                                   default=None),
        )
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
        (out / "rps_stage.json").write_text(json.dumps(record, indent=2) + "\n")
    if hasattr(trainer, "end"):
        trainer.end()
    del trainer, model, peft_model
    _free_memory()  # stage 2 loads its own copy of the base model
    return record


def _finished(out: Path, training_args, log) -> dict[str, Any] | None:
    """The record of a stage that already finished with these settings (for --resume), else None."""
    path = out / "rps_stage.json"
    if not path.exists() or not (out / "adapter_model.safetensors").exists():
        return None
    record = json.loads(path.read_text())
    if record.get("learning_rate") != training_args.learning_rate:
        return None
    log(f"{out}: finished before (rps_stage.json), kept")
    return {**record, "reused": True}


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(rps: RPSArguments, training_args, model_args, callbacks: Sequence = (), log=print) -> dict[str, Any]:
    """Check everything, then train the requested stages; returns (and writes) the run manifest."""
    from transformers import AutoTokenizer

    stages = _stages(rps)
    if rps.stage1_adapter:  # stage 1 is reused, never retrained
        if stages == [1]:
            raise ConfigError("stage1_adapter reuses a trained stage 1; there is nothing to run with stages '1'")
        stages = [2]
    check_model_args(model_args)
    if rps.stage2_reference not in REFERENCES:
        raise ConfigError(f"set stage2_reference to 'stage1' (the stage-1 model, TRL's default) or 'base'; "
                          f"got {rps.stage2_reference!r}")
    if not (rps.stage2_lr_ratio > 0 and math.isfinite(rps.stage2_lr_ratio)):
        raise ConfigError("stage2_lr_ratio must be a positive number")
    if not rps.data_dir:
        raise ConfigError("set data_dir (the output of `rps-train data`)")
    set_rpo_loss(rps, training_args)
    root = Path(training_args.output_dir)
    stage1_dir = Path(rps.stage1_adapter) if rps.stage1_adapter else root / "stage1"
    stage2_dir = root / "stage2"
    stage1_lr = training_args.learning_rate

    data = {}
    for stage in stages:
        data[stage] = load_stage_data(rps.data_dir, f"stage{stage}", rps.validation_split, training_args.seed)
    if 2 in stages:
        stage1_ids = data[1][2] if 1 in stages else load_stage_data(rps.data_dir, "stage1", 0, 0)[2]
        both = stage1_ids & data[2][2]
        if both:
            raise ConfigError(f"{len(both)} task id(s) are in both stages' data: {', '.join(sorted(both)[:8])}")
        if 1 not in stages:
            check_adapter_dir(stage1_dir, "stage-1 adapter")
            previous = stage1_dir / "rps_stage.json"
            if previous.exists():
                lr = json.loads(previous.read_text())["learning_rate"]
                if lr != stage1_lr:
                    raise ConfigError(f"stage-1 adapter {str(stage1_dir)!r} was trained at learning_rate {lr}, "
                                      f"but this config's learning_rate (stage 1's) is {stage1_lr}")

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    records: dict[str, Any] = {}
    if 1 in stages:
        args1 = _stage_args(training_args, stage1_dir, stage1_lr, f"{rps.schedule_name}-stage1")
        records["stage1"] = (rps.resume and _finished(stage1_dir, args1, log)) or train_stage(
            1, args1, model_args, data[1][0], data[1][1], tokenizer, callbacks=callbacks, resume=rps.resume)
    if 2 in stages:
        args2 = _stage_args(training_args, stage2_dir, rps.stage2_lr_ratio * stage1_lr, f"{rps.schedule_name}-stage2")
        records["stage2"] = (rps.resume and _finished(stage2_dir, args2, log)) or train_stage(
            2, args2, model_args, data[2][0], data[2][1], tokenizer, init_adapter=stage1_dir,
            reference=rps.stage2_reference, callbacks=callbacks, resume=rps.resume)

    from accelerate import PartialState

    manifest: dict[str, Any] = {}
    if PartialState().is_main_process:
        if "stage1" not in records and (stage1_dir / "rps_stage.json").exists():
            records["stage1"] = {**json.loads((stage1_dir / "rps_stage.json").read_text()), "reused": True}
        manifest = {
            "format": FORMAT,
            "schedule_name": rps.schedule_name,
            "base_model": model_args.model_name_or_path,
            "stage1_learning_rate": stage1_lr,
            "stage2_lr_ratio": rps.stage2_lr_ratio,
            "stage2_learning_rate": rps.stage2_lr_ratio * stage1_lr,
            "stage2_reference": rps.stage2_reference,
            "rpo_alpha": rps.rpo_alpha,
            "data_dir": rps.data_dir,
            "data_manifest_sha256": _data_manifest_hash(rps.data_dir),
            "stages": records,
            "rps_arguments": dataclasses.asdict(rps),
            "model_arguments": dataclasses.asdict(model_args),
            "training_arguments": json.loads(training_args.to_json_string()),
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        last = stage2_dir if 2 in stages else stage1_dir
        if (last / "adapter_config.json").exists():
            rank = json.loads((last / "adapter_config.json").read_text())["r"]
            log(commands(model_args.model_name_or_path, rps.schedule_name, last, rank, rps.inspect_task))
    return manifest


# --------------------------------------------------------------------------------------------
# Command line (TRL's parser: --config FILE plus field overrides)


def make_parser():
    from trl import DPOConfig, ModelConfig, TrlParser

    parser = TrlParser((RPSArguments, DPOConfig, ModelConfig), prog="rps-train train")
    add_config_option(parser, "training (RPSArguments, DPOConfig, ModelConfig)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    try:
        rps, training_args, model_args = parse_with_config(parser, argv, "training")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run(rps, training_args, model_args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
