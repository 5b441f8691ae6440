"""End to end on a tiny random Qwen3 (CPU, no network): stage 1, then stage 2 for RPS and EPS.

Runs configs/tiny_cpu.yaml through TRL's parser, as `rps-train train --config` does. Checks read
what the trainer logged (TensorBoard events and the saved log history), the saved adapters, and a
callback's view of the stage-2 model before its first step.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
datasets = pytest.importorskip("datasets")

from transformers import TrainerCallback  # noqa: E402

from rps_train import train as trainer_mod  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "tiny_cpu.yaml"
STAGE1_PAIRS, STAGE2_PAIRS = 10, 12  # 10% validation: 9 + 1 and 11 + 1 (batch 1: 9 and 11 steps)
LN2 = math.log(2)


PROGRAM = "def transform(grid):\n    return [r[::-1] for r in grid]\n"


def _pair(i: int, hard: bool) -> dict:
    """A short synthetic pair; `i` varies the text so every chosen response has its own NLL."""
    task_id = f"{'b' if hard else 'a'}{i:07d}"
    grid = [[(i + j) % 10 for j in range(3)]]
    flipped = [row[::-1] for row in grid]
    prompt = f"Example 1 input:\n{grid}\nExample 1 output:\n{flipped}\n\nTest input 1:\n{grid}\nFind the rule."
    chosen = (f"Reasoning:\nreverse each row ({i})\n\nPython program:\n```python\n{PROGRAM}```\n\n"
              f"Predicted test outputs:\n```json\n[{flipped}]\n```")
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": f"Reasoning:\nno idea {'x' * (i % 5)}"}],
        "task_id": task_id,
        "stage": "stage2" if hard else "stage1",
    }


def write_data(path: Path, stage1=STAGE1_PAIRS, stage2=STAGE2_PAIRS, overlap=False) -> Path:
    rows1 = [_pair(i, False) for i in range(stage1)]
    rows2 = [_pair(i, True) for i in range(stage2)]
    if overlap:
        rows2[0]["task_id"] = rows1[3]["task_id"]
    datasets.Dataset.from_list(rows1).save_to_disk(str(path / "stage1"))
    datasets.Dataset.from_list(rows2).save_to_disk(str(path / "stage2"))
    (path / "manifest.json").write_text(json.dumps({"format": "test"}))
    return path


def parse(*overrides: str):
    return trainer_mod.make_parser().parse_args_and_config(args=["--config", str(CONFIG), *overrides])


class Capture(TrainerCallback):
    """The trainable adapter tensors each stage starts from (before any optimizer step)."""

    def __init__(self):
        self.initial: dict[str, dict] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from peft import get_peft_model_state_dict

        state_dict = get_peft_model_state_dict(model, adapter_name="default")
        self.initial[args.output_dir] = {k: v.detach().clone() for k, v in state_dict.items()}


def _history(stage_dir: Path) -> list[dict]:
    return json.loads((stage_dir / "log_history.json").read_text())


def _train_logs(stage_dir: Path) -> list[dict]:
    return [e for e in _history(stage_dir) if "loss" in e and "learning_rate" in e]


def _tensorboard_lrs(stage_dir: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = (stage_dir / "runs").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [s.value for s in events.Scalars("train/learning_rate")]


@pytest.fixture(scope="module")
def runs(tiny_qwen3, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_data(root / "data")
    model = ["--model_name_or_path", str(tiny_qwen3), "--data_dir", str(data)]
    capture = Capture()

    rps = parse(*model, "--output_dir", str(root / "rps"))
    rps_manifest = trainer_mod.run(*rps, callbacks=[capture], log=lambda *_: None)

    printed: list[str] = []
    eps = parse(*model, "--output_dir", str(root / "eps"), "--schedule_name", "eps", "--stage2_lr_ratio", "1.0",
                "--stage1_adapter", str(root / "rps" / "stage1"))
    eps_manifest = trainer_mod.run(*eps, callbacks=[capture], log=printed.append)

    base = parse(*model, "--output_dir", str(root / "rps-base-ref"), "--stage2_reference", "base",
                 "--stage1_adapter", str(root / "rps" / "stage1"))
    base_manifest = trainer_mod.run(*base, callbacks=[capture], log=lambda *_: None)
    return {"root": root, "model": tiny_qwen3, "capture": capture, "printed": "\n".join(printed),
            "rps": rps_manifest, "eps": eps_manifest, "base": base_manifest}


def test_stage2_peak_lr_is_ratio_times_stage1(runs):
    root = runs["root"]
    s1 = [e["learning_rate"] for e in _train_logs(root / "rps" / "stage1")]
    rps2 = [e["learning_rate"] for e in _train_logs(root / "rps" / "stage2")]
    eps2 = [e["learning_rate"] for e in _train_logs(root / "eps" / "stage2")]
    assert max(s1) == 1e-3  # the config's learning_rate, logged at step 1 (no warmup)
    assert max(rps2) == 0.1 * max(s1)  # RPS: exactly 10%
    assert max(eps2) == 1.0 * max(s1)  # EPS: the same
    # The same values reached TensorBoard (stored as float32).
    assert max(_tensorboard_lrs(root / "rps" / "stage1")) == pytest.approx(1e-3, rel=1e-6)
    assert max(_tensorboard_lrs(root / "rps" / "stage2")) == pytest.approx(1e-4, rel=1e-6)
    assert max(_tensorboard_lrs(root / "eps" / "stage2")) == pytest.approx(1e-3, rel=1e-6)
    assert runs["rps"]["stage2_learning_rate"] == 0.1 * 1e-3 and runs["eps"]["stage2_learning_rate"] == 1e-3


def test_each_stage_has_a_fresh_cosine_schedule(runs):
    root = runs["root"]
    for stage_dir, peak, steps in ((root / "rps" / "stage1", 1e-3, 9), (root / "rps" / "stage2", 1e-4, 11),
                                   (root / "eps" / "stage2", 1e-3, 11)):
        lrs = [e["learning_rate"] for e in _train_logs(stage_dir)]
        assert len(lrs) == steps  # logged every step
        expected = [peak * 0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(steps)]
        assert lrs == pytest.approx(expected, rel=1e-12)
        evals = [e for e in _history(stage_dir) if "eval_loss" in e]
        assert [e["step"] for e in evals] == list(range(1, steps + 1))  # evaluated every step


def test_stage2_starts_from_the_stage1_adapter(runs):
    from safetensors.torch import load_file

    root, capture = runs["root"], runs["capture"]
    stage1 = load_file(str(root / "rps" / "stage1" / "adapter_model.safetensors"))
    for run in ("rps", "eps", "rps-base-ref"):
        initial = capture.initial[str(root / run / "stage2")]
        assert initial.keys() == stage1.keys()
        assert all(torch.equal(initial[k], stage1[k]) for k in stage1)
    # Stage 1 itself started from PEFT's fresh LoRA (B = 0), and stage 2 did move the weights.
    fresh = capture.initial[str(root / "rps" / "stage1")]
    assert all(not v.any() for k, v in fresh.items() if "lora_B" in k)
    stage2 = load_file(str(root / "rps" / "stage2" / "adapter_model.safetensors"))
    assert any(not torch.equal(stage2[k], stage1[k]) for k in stage1)
    # The manifests say the same.
    s1_sha = runs["rps"]["stages"]["stage1"]["adapter_sha256"]
    assert runs["rps"]["stages"]["stage2"]["initial_adapter_sha256"] == s1_sha
    assert runs["eps"]["stages"]["stage2"]["initial_adapter_sha256"] == s1_sha
    assert runs["eps"]["stages"]["stage1"]["reused"] is True


def test_stage2_reference_is_explicit_and_used(runs):
    root = runs["root"]
    assert runs["rps"]["stage2_reference"] == "stage1" and runs["base"]["stage2_reference"] == "base"
    # Before its first update the policy equals a stage-1 reference exactly: zero rewards, DPO loss ln 2.
    first = _train_logs(root / "rps" / "stage2")[0]
    assert (first["rewards/chosen"], first["rewards/rejected"]) == pytest.approx((0.0, 0.0), abs=1e-4)
    # Against the base model the same starting policy already has non-zero rewards.
    first_base = _train_logs(root / "rps-base-ref" / "stage2")[0]
    assert first_base["rewards/chosen"] != 0.0 and first_base["rewards/margins"] != 0.0


def _chosen_nll(model_dir: Path, rows: list[dict]) -> list[float]:
    """Mean token NLL of each chosen completion under the base model, computed here without TRL."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for row in rows:
        prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)
        full = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=True, return_dict=True)
        ids, n = full["input_ids"], len(prompt["input_ids"])
        assert ids[:n] == prompt["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logps = torch.log_softmax(logits[:-1].float(), dim=-1)
        targets = torch.tensor(ids[1:])
        token_logps = logps.gather(1, targets[:, None])[:, 0][n - 1:]
        out.append(-token_logps.mean().item())
    return out


def test_sft_term_is_in_the_loss(runs):
    root = runs["root"]
    first = _train_logs(root / "rps" / "stage1")[0]
    # Step 1: a fresh LoRA (B = 0) equals the base reference, so the DPO term is exactly ln 2 and the
    # rest is alpha (1) x the chosen response's mean token NLL (batch of 1 pair).
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-4)  # float noise of two equal forward passes
    sft = first["loss"] - LN2
    assert sft > 1.0
    rows = datasets.load_from_disk(str(root / "data" / "stage1")).to_list()
    nll = _chosen_nll(runs["model"], rows)
    assert min(abs(sft - x) for x in nll) < 1e-5  # it is one training pair's NLL (pairs differ by > 1e-4)
    manifest = runs["rps"]
    assert manifest["stages"]["stage1"]["loss_type"] == ["sigmoid", "sft"]
    assert manifest["stages"]["stage1"]["loss_weights"] == [1.0, 1.0]


def test_saved_adapters_load_with_peft_and_vllm_layout(runs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root = runs["root"]
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    base_logits = AutoModelForCausalLM.from_pretrained(runs["model"])(ids).logits
    for stage_dir in (root / "rps" / "stage1", root / "rps" / "stage2", root / "eps" / "stage2"):
        config = json.loads((stage_dir / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["r"] == 8 and not config.get("modules_to_save")
        assert not (stage_dir / "ref").exists()  # TRL's frozen reference copy is not shipped
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(runs["model"]), str(stage_dir))
        assert list(model.peft_config) == ["default"]
        assert not torch.allclose(model(ids).logits, base_logits)
        record = json.loads((stage_dir / "rps_stage.json").read_text())
        assert record["lora_rank"] == 8


def test_printed_commands(runs):
    root, printed = runs["root"], runs["printed"]
    adapter = (root / "eps" / "stage2").resolve()
    assert f"vllm serve {runs['model']} --port 8000 --max-model-len 40960 --enable-lora --max-lora-rank 8 " \
           f"--max-loras 1 --lora-modules eps={adapter}" in printed
    assert "inspect eval rps_evals/arc2 --model openai-api/vllm/eps" in printed
    assert f"env -u VLLM_BASE_URL inspect eval rps_evals/arc2 --model vllm/{runs['model']}:{adapter}" in printed
    assert trainer_mod.vllm_max_lora_rank(8) == 8 and trainer_mod.vllm_max_lora_rank(12) == 16


def test_cli_runs_stage1_only(tiny_qwen3, tmp_path, capsys):
    from rps_train.cli import main

    data = write_data(tmp_path / "data", stage1=3, stage2=3)
    assert main(["train", "--config", str(CONFIG), "--model_name_or_path", str(tiny_qwen3), "--data_dir", str(data),
                 "--output_dir", str(tmp_path / "out"), "--stages", "1", "--report_to", "none"]) == 0
    assert (tmp_path / "out" / "stage1" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "out" / "stage2").exists()
    assert "--lora-modules rps=" in capsys.readouterr().out


# ---- bad input: clear errors before any model is loaded ------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["--stages", "2"], "stage-1 adapter '.*stage1' does not exist"),
    (["--stage1_adapter", "/nonexistent/adapter"], "stage-1 adapter '/nonexistent/adapter' does not exist"),
    (["--stage2_reference", "policy"], "set stage2_reference to 'stage1'"),
    (["--stage2_lr_ratio", "0"], "stage2_lr_ratio must be a positive number"),
    (["--lora_modules_to_save", "lm_head"], "lora_modules_to_save must be empty"),
])
def test_bad_config(tmp_path, overrides, message):
    data = write_data(tmp_path / "data", stage1=3, stage2=3)
    args = parse("--model_name_or_path", "not-loaded", "--data_dir", str(data), "--output_dir",
                 str(tmp_path / "out"), *overrides)
    with pytest.raises(trainer_mod.ConfigError, match=message):
        trainer_mod.run(*args)


def test_overlapping_stage_ids(tmp_path):
    data = write_data(tmp_path / "data", overlap=True)
    args = parse("--model_name_or_path", "not-loaded", "--data_dir", str(data), "--output_dir", str(tmp_path / "o"))
    with pytest.raises(trainer_mod.ConfigError, match=r"1 task id\(s\) are in both stages' data: a0000003"):
        trainer_mod.run(*args)


def test_missing_columns_and_data(tmp_path, capsys):
    from rps_train.cli import main

    datasets.Dataset.from_list([{"prompt": "p", "chosen": "c", "task_id": "t"}]).save_to_disk(
        str(tmp_path / "data" / "stage1"))
    assert main(["train", "--config", str(CONFIG), "--model_name_or_path", "not-loaded",
                 "--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "o")]) == 2
    assert "stage1 data" in (err := capsys.readouterr().err) and "lacks column(s) rejected" in err
    args = parse("--model_name_or_path", "not-loaded", "--data_dir", str(tmp_path / "none"))
    with pytest.raises(trainer_mod.ConfigError, match="stage1 data .* does not exist"):
        trainer_mod.run(*args)


@pytest.mark.parametrize("name, ratio", [("rps_qwen3_8b", 0.1), ("eps_qwen3_8b", 1.0)])
def test_study_configs(name, ratio):
    """The Qwen3-8B configs say what the report says (bf16 is checked in the file: this CPU can't)."""
    import yaml

    path = ROOT / "configs" / f"{name}.yaml"
    assert yaml.safe_load(path.read_text())["bf16"] is True
    rps, args, model = trainer_mod.make_parser().parse_args_and_config(args=["--config", str(path), "--bf16", "false"])
    trainer_mod.set_rpo_loss(rps, args)
    assert model.model_name_or_path == "Qwen/Qwen3-8B"
    assert args.learning_rate == 1e-5 and rps.stage2_lr_ratio == ratio
    assert str(args.lr_scheduler_type.value) == "cosine" and args.warmup_steps == 0
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 1.0] and rps.rpo_alpha == 1.0
    assert rps.validation_split == 0.01 and args.max_length == 32768
    assert args.activation_checkpointing is True and rps.stage2_reference == "stage1"
    assert not model.lora_modules_to_save and len(model.lora_target_modules) == 7
    assert args.eval_strategy.value == "steps" and args.eval_steps == 1 and args.logging_steps == 1
    if name == "eps_qwen3_8b":  # EPS continues from RPS's stage-1 model
        assert rps.stage1_adapter == "runs/rps_qwen3_8b/stage1"


# ---- honesty about what TRL trained on, and resuming ------------------------------------------

def _long_prompt_data(path: Path, tokenizer, long: int, short: int) -> tuple[Path, list[int]]:
    """Stage-1 pairs, `long` of them with a prompt padded far past 256 tokens; their prompt lengths."""
    rows = [_pair(i, False) for i in range(long + short)]
    for row in rows[:long]:
        row["prompt"][0]["content"] += "\n" + "Example 1 input: [1, 2, 3]\n" * 60
    datasets.Dataset.from_list(rows).save_to_disk(str(path / "stage1"))
    datasets.Dataset.from_list([_pair(0, True)]).save_to_disk(str(path / "stage2"))
    lengths = [len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]) for r in rows]
    return path, lengths


def test_dropped_pairs_are_reported(tiny_qwen3, tmp_path, capsys):
    from transformers import AutoTokenizer

    data, lengths = _long_prompt_data(tmp_path / "data", AutoTokenizer.from_pretrained(tiny_qwen3), long=2, short=3)
    assert min(lengths[:2]) >= 256 > max(lengths[2:])  # the premise: 2 prompts reach max_length, 3 do not
    args = parse("--model_name_or_path", str(tiny_qwen3), "--data_dir", str(data), "--output_dir",
                 str(tmp_path / "out"), "--stages", "1", "--validation_split", "0", "--eval_strategy", "no", "--max_length", "256",
                 "--report_to", "none")
    manifest = trainer_mod.run(*args, log=lambda *_: None)
    record = json.loads((tmp_path / "out" / "stage1" / "rps_stage.json").read_text())
    assert (record["pairs_before_filter"], record["train_pairs"], record["dropped_pairs"]) == (5, 3, 2)
    assert record["global_steps"] == 3 and record["max_length"] == 256
    assert manifest["stages"]["stage1"]["dropped_pairs"] == 2
    assert "stage 1: training on 3 of 5 pairs (2 dropped by TRL: prompt >= max_length=256)" in capsys.readouterr().err


def test_all_pairs_dropped_is_an_error_naming_max_length(tiny_qwen3, tmp_path):
    from transformers import AutoTokenizer

    data, _ = _long_prompt_data(tmp_path / "data", AutoTokenizer.from_pretrained(tiny_qwen3), long=2, short=0)
    args = parse("--model_name_or_path", str(tiny_qwen3), "--data_dir", str(data), "--output_dir",
                 str(tmp_path / "out"), "--stages", "1", "--validation_split", "0", "--eval_strategy", "no", "--max_length", "256",
                 "--report_to", "none")
    with pytest.raises(trainer_mod.ConfigError, match=r"stage 1: all 2 training pairs .* max_length=256"):
        trainer_mod.run(*args, log=lambda *_: None)
    assert not (tmp_path / "out" / "stage1" / "adapter_model.safetensors").exists()


class Interrupt(TrainerCallback):
    """Stops training as a kill would, after `at` optimizer steps."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"interrupted at step {self.at}")


def test_resume_from_the_last_checkpoint(tiny_qwen3, tmp_path):
    data = write_data(tmp_path / "data")
    common = ["--model_name_or_path", str(tiny_qwen3), "--data_dir", str(data), "--output_dir", str(tmp_path / "out"),
              "--stages", "1", "--save_strategy", "steps", "--save_steps", "3", "--report_to", "none"]
    with pytest.raises(KeyboardInterrupt):
        trainer_mod.run(*parse(*common), callbacks=[Interrupt(5)], log=lambda *_: None)
    stage1 = tmp_path / "out" / "stage1"
    assert (stage1 / "checkpoint-3").is_dir() and not (stage1 / "rps_stage.json").exists()
    trainer_mod.run(*parse(*common, "--resume", "true"), log=lambda *_: None)
    record = json.loads((stage1 / "rps_stage.json").read_text())
    assert record["resumed_from"] == str(stage1 / "checkpoint-3")
    assert record["global_steps"] == STAGE1_PAIRS - 1  # 9 training pairs at batch 1, counted from the start
    # a finished stage is kept as it is on the next --resume
    manifest = trainer_mod.run(*parse(*common, "--resume", "true"), log=lambda *_: None)
    assert manifest["stages"]["stage1"]["reused"] is True
    assert manifest["stages"]["stage1"]["adapter_sha256"] == record["adapter_sha256"]
