"""`rps-train gpu-check`: the analytic estimate's arithmetic (checked against hand-computed figures
for Qwen3-8B at 32k), the counts against a real model, and the `--tiny` run of the whole code path
on CPU through TRL's DPOTrainer with configs/rps_qwen3_8b.yaml's settings."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

from rps_train import gpu_check  # noqa: E402
from rps_train.cli import main  # noqa: E402
from rps_train.memory_estimate import (GIB, QWEN3_8B, TINY_QWEN3, StepSettings, estimate, estimate_step,  # noqa: E402
                                       per_token_layer_bytes)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "rps_qwen3_8b.yaml"
# configs/rps_qwen3_8b.yaml as the estimate sees it: LoRA r=16 on all seven linears, dropout 0.05,
# bf16, batch 1 pair, activation checkpointing.
STUDY = StepSettings()


# ---- the estimate, by hand ----------------------------------------------------------------------

def test_qwen3_8b_parameter_counts_by_hand():
    # embeddings and untied LM head: 151,936 x 4,096 each; one layer: q 4096x4096, k and v 4096x1024,
    # o 4096x4096, gate/up/down 4096x12288, two RMSNorms (4096) and the q/k norms (128); final norm.
    embed = 151_936 * 4_096
    layer = 2 * 4_096 * 4_096 + 2 * 4_096 * 1_024 + 3 * 4_096 * 12_288 + 2 * 4_096 + 2 * 128
    assert embed == 622_329_856 and layer == 192_946_432
    assert QWEN3_8B.parameter_count() == 2 * embed + 36 * layer + 4_096 == 8_190_735_360
    # LoRA r=16: r x (in + out) per linear: q 8192, k 5120, v 5120, o 8192, gate/up/down 16384 each.
    assert QWEN3_8B.lora_parameter_count(16, STUDY.lora_targets) == 36 * 16 * 75_776 == 43_646_976


def test_qwen3_8b_at_32k_by_hand():
    row = estimate_step(QWEN3_8B, 32_768, STUDY)
    m = row["bytes"]
    tokens = 2 * 32_768  # chosen + rejected
    assert row["tokens_per_step"] == tokens and row["scored_tokens"] == 2 * (32_768 - 8_192)
    # per token, one layer: norms 2 x (4 x 4096 + 2 x 4096); attention 2 x (4096 + 2 x 1024) + 4 x (4096 + 1024)
    # + 2 x (4096 + 1024) + 2 x 4096 + 4 x 32; mlp 2 x 4 x 12288; lora: a float32 copy (4 bytes) per input
    # feature of the seven adapted linears (5 x 4096 + 4096 + 12288) plus 2 x 16 per adapter.
    assert row["per_token_layer_bytes"] == {"norms": 49_152, "attention": 51_328, "mlp": 98_304, "lora": 147_680}
    assert m["weights"] == 8_190_735_360 * 2 == 16_381_470_720
    assert m["lora_states"] == 43_646_976 * 16 == 698_351_616
    assert m["checkpoints"] == 37 * tokens * 4_096 * 2 == 19_864_223_744
    assert m["layer_backward"] == tokens * 346_464 + tokens * 2 * (2 * 4_096 + 2 * 12_288) == 27_000_832_000
    tile = 4_096 * 32_768 * 2
    assert m["reference_forward"] == tokens * 2 * (2 * 4_096 + 2 * 4_096 + 2 * 1_024 + 3 * 12_288) + tile
    assert m["lm_head_backward"] == tile + 49_152 * 4_096 * 6 + 7 * 49_152 * 4 == 1_477_771_264
    assert m["peak_allocated"] == 16_381_470_720 + 698_351_616 + 19_864_223_744 + 27_000_832_000 == 63_944_878_080
    assert round(m["peak_allocated"] / GIB, 1) == 59.6
    # bf16 logits + float32 log-softmax, 151,936 wide, for both sequences, policy and reference
    assert m["full_logits_without_fused_head"] == 2 * tokens * 151_936 * (2 + 4) == 119_487_332_352


def test_settings_change_the_terms_they_should():
    base = estimate_step(QWEN3_8B, 32_768, STUDY)["bytes"]
    no_dropout = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, lora_dropout=0.0))
    assert no_dropout["per_token_layer_bytes"]["lora"] == 7 * 2 * 16
    assert base["layer_backward"] - no_dropout["bytes"]["layer_backward"] == 65_536 * (147_680 - 224)
    offload = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, activation_offloading=True))["bytes"]
    assert offload["checkpoints"] == 2 * 65_536 * 4_096 * 2
    no_ckpt = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, activation_checkpointing=False))["bytes"]
    assert no_ckpt["checkpoints"] == 36 * 65_536 * 346_464  # every layer keeps everything: ~761 GiB
    stage2 = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, reference_adapter=True))["bytes"]
    assert stage2["lora_states"] - base["lora_states"] == 43_646_976 * 4
    pre = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, precompute_ref_log_probs=True))["bytes"]
    assert pre["reference_forward"] == 0 and pre["peak_allocated"] == base["peak_allocated"]  # not the peak


def test_fits_against_the_card():
    rows = estimate(QWEN3_8B, [8_192, 16_384, 32_768], STUDY, card_gib=40)
    assert [r["fits"] for r in rows] == [True, True, False]  # 28.8, 39.7, 61.6 GiB with the 2 GiB reserve
    assert all(r["fits"] for r in estimate(QWEN3_8B, [32_768], STUDY, card_gib=78))
    with pytest.raises(ValueError, match="lm_head"):
        QWEN3_8B.lora_parameter_count(16, ["q_proj", "lm_head"])


def test_counts_match_a_real_model_and_peft():
    """The formulas against the modules: the tiny shape built by transformers and wrapped by PEFT."""
    from peft import LoraConfig, get_peft_model

    from rps_train import tiny

    assert (TINY_QWEN3.vocab_size, TINY_QWEN3.hidden_size, TINY_QWEN3.num_hidden_layers) == (
        tiny.VOCAB_SIZE, tiny.HIDDEN_SIZE, tiny.NUM_LAYERS)
    model = gpu_check.random_model(TINY_QWEN3, "float32", "cpu", "sdpa", seed=0)
    assert sum(p.numel() for p in model.parameters()) == TINY_QWEN3.parameter_count()
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=list(STUDY.lora_targets)))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == TINY_QWEN3.lora_parameter_count(16, STUDY.lora_targets)


@pytest.mark.parametrize("dropout", [0.05, 0.0])
def test_per_token_layer_bytes_against_what_pytorch_saves(dropout):
    """One bf16 decoder layer with LoRA under autocast, as the trainer runs it (CPU, SDPA): the bytes of
    every tensor autograd saves for the backward, parameters and the layer's input left out, per token.
    The count leaves out some kernel copies (e.g. SDPA's contiguous q, k, v), so it may be up to 15% low."""
    from peft import LoraConfig, get_peft_model

    arch = dataclasses.replace(TINY_QWEN3, name="small", hidden_size=256, intermediate_size=768,
                               num_hidden_layers=1, num_attention_heads=8, head_dim=32)
    settings = dataclasses.replace(STUDY, lora_dropout=dropout)
    model = get_peft_model(gpu_check.random_model(arch, "bfloat16", "cpu", "sdpa", seed=0),
                           LoraConfig(r=16, lora_dropout=dropout, target_modules=list(settings.lora_targets)))
    model.train()
    decoder = model.base_model.model.model
    tokens = 256
    x = torch.randn(2, tokens, arch.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    positions = torch.arange(tokens).unsqueeze(0).expand(2, -1)
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()} | {x.untyped_storage().data_ptr()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            saved[ptr] = max(saved.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        decoder.layers[0](x, attention_mask=None, position_ids=positions,
                          position_embeddings=decoder.rotary_emb(x, positions))
    measured = sum(saved.values()) / (2 * tokens)
    counted = sum(per_token_layer_bytes(arch, settings).values())
    assert 0.85 * measured <= counted <= measured, (counted, measured)


# ---- synthetic data ---------------------------------------------------------------------------

def test_synthetic_pairs_have_exact_lengths():
    tok = gpu_check.synthetic_tokenizer(100)
    pairs = gpu_check.synthetic_pairs(257, 2, 0.25, seed=0, words=100)
    for row in pairs:
        prompt = tok(row["prompt"])["input_ids"]
        for side in ("chosen", "rejected"):
            ids = tok(row["prompt"] + row[side])["input_ids"]
            assert len(prompt) == 64 and len(ids) == 257 and ids[:64] == prompt and ids[-1] == tok.eos_token_id
            assert max(ids) < 102


# ---- the command ------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_run_measures_every_length_and_variant(tmp_path, capsys):
    out = tmp_path / "check"
    assert main(["gpu-check", "--config", str(CONFIG), "--tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "# Estimate: tiny-qwen3" in printed and "full logits" in printed
    assert "# Measured on cpu (float32, 3 steps each" in printed
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["measured"] and report["lengths"] == [64, 128] and report["config_max_length"] == 32768
    assert report["loss_type"] == ["sigmoid", "sft"] and report["loss_weights"] == [1.0, 1.0]  # RPO alpha 1
    assert report["estimate_settings"]["lora_rank"] == 16 and report["estimate_settings"]["lora_dropout"] == 0.05
    rows = {(r["setting"], r["length"]): r for r in report["measurements"]}
    assert list(rows) == [("baseline", 64), ("baseline", 128), ("lora_dropout_0", 128),
                          ("activation_offloading", 128), ("precompute_ref_log_probs", 128),
                          ("liger_kernel", 128), ("padding_free", 128)]
    for key in [("baseline", 64), ("baseline", 128), ("lora_dropout_0", 128), ("precompute_ref_log_probs", 128)]:
        r = rows[key]
        assert r["status"] == "ok" and r["steps"] == 3 and len(r["step_seconds"]) == 3
        assert r["mean_step_seconds"] == pytest.approx(sum(r["step_seconds"][1:]) / 2, abs=1e-3)
        assert r["tokens_per_second"] == pytest.approx(2 * key[1] / r["mean_step_seconds"], rel=1e-3)
        assert math.isfinite(r["train_loss"]) and r["peak_allocated_gib"] is None  # no accelerator counter on CPU
        assert f"{key[0]:<24}  {key[1]:<6}  ok" in printed
    assert rows[("activation_offloading", 128)]["status"] == "skipped"
    assert "padding_free" in rows[("padding_free", 128)]["message"]
    assert report["summary"] == {"longest_length": 128, "baseline_fits": [64, 128],
                                 "settings_fitting_longest": ["lora_dropout_0", "precompute_ref_log_probs"],
                                 "advice": "the config's settings fit 128 tokens"}


def test_without_a_gpu_the_estimate_stands(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "check"
    assert main(["gpu-check", "--config", str(CONFIG), "--lengths", "8192,32768", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Qwen/Qwen3-8B, 8,190,735,360 parameters" in printed
    assert " 32768     15.3   0.7      18.5      7.0       1.4       25.1  59.6        61.6      yes" in printed
    assert "No CUDA GPU here: nothing measured" in printed
    report = json.loads((out / "gpu_check.json").read_text())
    assert not report["measured"] and report["measurements"] == []
    assert report["estimate"][1]["bytes"]["peak_allocated"] == 63_944_878_080
    assert report["variant_estimates"]["lora_dropout_0"]["bytes"]["peak_allocated"] < 63_944_878_080


@pytest.mark.parametrize("extra, message", [
    (["--lengths", "8k"], "error: --lengths must be comma-separated whole numbers, got '8k'\n"),
    (["--lengths", "4"], "error: --lengths must be whole numbers of at least 8 tokens, got '4'\n"),
    (["--variants", "fast"], "error: --variants: unknown fast; use auto, none or some of lora_dropout_0, "
                             "activation_offloading, precompute_ref_log_probs, liger_kernel, padding_free\n"),
    (["--model_name_or_path", "org/other-model"],
     "error: no bundled architecture for model_name_or_path 'org/other-model' (known: Qwen/Qwen3-8B, tiny-qwen3); "
     "use --tiny for the CPU check\n"),
    (["--steps", "0"], "error: --steps must be at least 1, got 0\n"),
])
def test_bad_input_is_one_line_and_exit_2(extra, message, tmp_path, capsys):
    assert main(["gpu-check", "--config", str(CONFIG), "--out", str(tmp_path / "o"), "--estimate_only"] + extra) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "o").exists()


def test_out_is_required(capsys):
    assert main(["gpu-check", "--config", str(CONFIG), "--estimate_only"]) == 2
    assert capsys.readouterr().err == "error: --out DIR is required (gpu_check.json is written there)\n"


def test_an_out_of_memory_step_is_recorded_and_the_next_goes_on():
    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.27 GiB\nmore detail")

    record = gpu_check.measure("baseline", 32768, oom, estimate_bytes=63_944_878_080, batch_pairs=1)
    assert record["status"] == "oom" and record["message"] == "CUDA out of memory. Tried to allocate 9.27 GiB"
    assert record["estimate_peak_gib"] == round(63_944_878_080 / GIB, 6)

    def unsupported():
        raise ValueError("liger kernels need a GPU\nlong detail")

    record = gpu_check.measure("liger_kernel", 32768, unsupported, estimate_bytes=None, batch_pairs=1)
    assert record == {"setting": "liger_kernel", "length": 32768, "estimate_peak_gib": None, "status": "error",
                      "message": "ValueError: liger kernels need a GPU"}
    assert "liger_kernel: error: ValueError: liger kernels need a GPU" in gpu_check.measurement_table([record])


def test_fitting_summary():
    rows = [{"setting": "baseline", "length": 8192, "status": "ok"},
            {"setting": "baseline", "length": 32768, "status": "oom"},
            {"setting": "lora_dropout_0", "length": 32768, "status": "oom"},
            {"setting": "activation_offloading", "length": 32768, "status": "ok"},
            {"setting": "padding_free", "length": 32768, "status": "skipped"}]
    summary = gpu_check.fitting_summary([8192, 32768], rows)
    assert summary["advice"] == "32768 tokens fit with: activation_offloading"
    assert summary["baseline_fits"] == [8192]
    rows[3]["status"] = "oom"
    assert gpu_check.fitting_summary([8192, 32768], rows)["advice"] == (
        "nothing measured fits 32768 tokens; set max_length to 8192 (measured to fit)")


def test_measurement_args_keep_the_config_and_write_nothing(tmp_path):
    parser = gpu_check.make_parser()
    _, check, training_args, model_args = parser.parse_args_and_config(
        args=["--config", str(CONFIG), "--tiny", "--use_cpu", "true", "--bf16", "false"])
    args = gpu_check.measurement_args(training_args, tmp_path, 4096, 3, "baseline")
    assert (args.max_length, args.max_steps, args.gradient_accumulation_steps) == (4096, 3, 1)
    assert args.report_to == [] and args.save_strategy == "no" and args.eval_strategy == "no"
    assert args.learning_rate == 1e-5 and args.beta == 0.1 and args.activation_checkpointing
    assert model_args.attn_implementation == "sdpa" and model_args.lora_r == 16 and check.tiny


def test_docs_show_the_estimate_the_code_computes():
    """docs/training.md's Qwen3-8B table is estimate() for configs/rps_qwen3_8b.yaml, to the printed digit."""
    text = (ROOT / "docs" / "training.md").read_text()
    for row in estimate(QWEN3_8B, [8_192, 16_384, 32_768], STUDY, card_gib=78):
        m = row["bytes"]
        cells = [f"{row['length']:,}"] + [f"{m[k] / GIB:.1f}" for k in (
            "weights", "lora_states", "checkpoints", "reference_forward", "lm_head_backward", "layer_backward",
            "peak_allocated", "with_reserve", "full_logits_without_fused_head")]
        assert "| " + " | ".join(cells) + " |" in text
    no_dropout = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, lora_dropout=0.0))["bytes"]
    offload = estimate_step(QWEN3_8B, 32_768, dataclasses.replace(STUDY, activation_offloading=True))["bytes"]
    assert (f"`lora_dropout: 0` lowers the peak to {no_dropout['peak_allocated'] / GIB:.1f} GiB, "
            f"`activation_offloading: true` to\n{offload['peak_allocated'] / GIB:.1f} GiB") in text
    assert "**No GPU measurement has been made yet.**" in text
