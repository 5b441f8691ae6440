"""Peak accelerator memory of one DPO + LoRA step, computed from the architecture alone.

Lets a user see whether a length fits a card before renting one; `rps-train gpu-check` prints it
beside (or, without a GPU, instead of) the measurement. It follows the code path of TRL 1.16's
DPOTrainer with a PEFT model: one batch of chosen + rejected sequences (2 x per_device_train_batch_size),
the policy forward with gradients, a no-grad reference forward through the same weights with the
adapter disabled, then the backward. TRL 1.16 never builds the full logits: its fused LM head
projects 4,096 tokens x 32,768 vocabulary entries at a time and keeps per-token statistics only.
The full-logits figure (bf16 logits plus the float32 log-softmax, chosen + rejected, policy and
reference) is computed too, to show what that head saves; it is not part of the peak.

Counts are of tensors autograd keeps; they are an estimate, a measurement beats them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

GIB = 2 ** 30
# TRL 1.16's fused LM head: tokens per tile and vocabulary entries per tile (trl/kernels/chunked_logprob.py,
# _CHUNKED_LOGPROB_CHUNK_SIZE in trl/trainer/utils.py); seven float32 per-token statistics.
LM_HEAD_TOKEN_TILE = 4096
LM_HEAD_VOCAB_TILE = 32768
LM_HEAD_STATS = 7
# CUDA context, cuBLAS workspaces and allocator fragmentation: memory a card loses beyond the
# tensors torch.cuda.max_memory_allocated() counts.
RESERVE_BYTES = 2 * GIB
# LoRA weight, gradient and AdamW's two moments, all float32 (PEFT upcasts adapters of a bf16 base).
LORA_STATE_BYTES = 16


@dataclass(frozen=True)
class Architecture:
    """The numbers of a Qwen3 decoder that memory depends on (a transformers Qwen3Config's fields)."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 40960
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear layer of one decoder layer, by its module name."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def parameter_count(self) -> int:
        """Every parameter: embeddings, layers (linears, two RMSNorms, q/k norms), final norm, LM head."""
        per_layer = sum(a * b for a, b in self.linear_shapes().values()) + 2 * self.hidden_size + 2 * self.head_dim
        embeddings = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else embeddings
        return embeddings + self.num_hidden_layers * per_layer + self.hidden_size + head

    def lora_parameter_count(self, rank: int, targets: list[str] | tuple[str, ...]) -> int:
        """LoRA A (r x in) and B (out x r) for every targeted linear of every layer."""
        shapes = self.linear_shapes()
        unknown = sorted(set(targets) - set(shapes))
        if unknown:
            raise ValueError(f"LoRA target(s) {', '.join(unknown)} are not linear layers of {self.name} "
                             f"(known: {', '.join(shapes)})")
        return self.num_hidden_layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in set(targets))

    def qwen3_config(self, **overrides: Any):
        """A transformers Qwen3Config with these numbers (a random model is built from it)."""
        from transformers import Qwen3Config

        return Qwen3Config(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                           intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
                           num_attention_heads=self.num_attention_heads,
                           num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim,
                           tie_word_embeddings=self.tie_word_embeddings,
                           max_position_embeddings=self.max_position_embeddings, rope_theta=self.rope_theta,
                           rms_norm_eps=self.rms_norm_eps, **overrides)


# The published Qwen3-8B config.json numbers, bundled so that neither the estimate nor gpu-check
# needs a download.
QWEN3_8B = Architecture(name="Qwen/Qwen3-8B", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
                        num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128)
# What `rps-train tiny-model` builds (rps_train/tiny.py): the `--tiny` check runs this shape on CPU.
TINY_QWEN3 = Architecture(name="tiny-qwen3", vocab_size=512, hidden_size=64, intermediate_size=128,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                          max_position_embeddings=32768)
BUNDLED = {QWEN3_8B.name: QWEN3_8B, "Qwen3-8B": QWEN3_8B, TINY_QWEN3.name: TINY_QWEN3}


@dataclass(frozen=True)
class StepSettings:
    """The trainer settings memory depends on (from the training config)."""

    lora_rank: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_dropout: float = 0.05
    weight_bytes: int = 2  # bf16
    batch_pairs: int = 1  # per_device_train_batch_size: each pair is a chosen and a rejected sequence
    activation_checkpointing: bool = True
    activation_offloading: bool = False
    reference_adapter: bool = False  # stage 2 with stage2_reference: stage1 keeps a frozen copy of the adapter
    precompute_ref_log_probs: bool = False
    prompt_fraction: float = 0.25  # the prompt's share of each sequence; the LM head scores the rest


def per_token_layer_bytes(arch: Architecture, s: StepSettings) -> dict[str, int]:
    """Bytes one token leaves in one decoder layer for its backward, by part.

    norms: each RMSNorm keeps its input as float32 and its bf16 output; attention: q, k, v, the
    float32 inputs of the q/k norms, the rotated q and k, the attention output and its float32
    log-sum-exp (SDPA/flash: no L x L scores); mlp: gate, up, act(gate) and their product;
    lora: PEFT casts each adapted linear's input to the adapter's float32 before the dropout, so with
    dropout every adapted linear keeps its own float32 copy of its input; every adapter keeps its
    r-wide hidden. tests/test_train_gpu_check.py compares this with the tensors PyTorch saves.
    """
    b = s.weight_bytes
    h, i = arch.hidden_size, arch.intermediate_size
    q, kv = arch.num_attention_heads * arch.head_dim, arch.num_key_value_heads * arch.head_dim
    shapes = arch.linear_shapes()
    lora_inputs = sum(shapes[t][0] for t in set(s.lora_targets))
    return {
        "norms": 2 * (4 * h + b * h),
        "attention": b * (q + 2 * kv) + 4 * (q + kv) + b * (q + kv) + b * q + 4 * arch.num_attention_heads,
        "mlp": b * 4 * i,
        "lora": (4 * lora_inputs if s.lora_dropout > 0 else 0) + b * s.lora_rank * len(set(s.lora_targets)),
    }


def estimate_step(arch: Architecture, length: int, s: StepSettings) -> dict[str, Any]:
    """Peak bytes of one training step at `length` tokens per sequence, item by item.

    peak = weights + lora + checkpoints + the largest of three moments that never overlap:
    the reference forward (one layer's working set), the LM head's backward (its tile, the
    float32 gradient of the hidden states and the saved hidden states of the scored tokens) and
    one layer's backward (its recomputed activations plus the gradients flowing through it).
    """
    b = s.weight_bytes
    h, i = arch.hidden_size, arch.intermediate_size
    q, kv = arch.num_attention_heads * arch.head_dim, arch.num_key_value_heads * arch.head_dim
    tokens = 2 * s.batch_pairs * length  # chosen + rejected
    scored = 2 * s.batch_pairs * (length - int(length * s.prompt_fraction))  # completion tokens
    lora_params = arch.lora_parameter_count(s.lora_rank, s.lora_targets)
    layer = sum(per_token_layer_bytes(arch, s).values())

    weights = arch.parameter_count() * b
    lora = lora_params * LORA_STATE_BYTES + (lora_params * 4 if s.reference_adapter else 0)
    if not s.activation_checkpointing:
        checkpoints = arch.num_hidden_layers * tokens * layer  # every layer keeps everything
    elif s.activation_offloading:
        checkpoints = 2 * tokens * h * b  # the rest waits in CPU memory
    else:
        checkpoints = (arch.num_hidden_layers + 1) * tokens * h * b  # each layer's input + the final hidden
    tile = min(scored, LM_HEAD_TOKEN_TILE) * LM_HEAD_VOCAB_TILE * b
    reference_forward = 0 if s.precompute_ref_log_probs else tokens * b * (2 * h + 2 * q + 2 * kv + 3 * i) + tile
    lm_head_backward = tile + scored * h * 4 + scored * h * b + LM_HEAD_STATS * scored * 4
    layer_backward = (tokens * layer if s.activation_checkpointing else 0) + tokens * b * (2 * h + 2 * i)
    transient = max(reference_forward, lm_head_backward, layer_backward)
    peak = weights + lora + checkpoints + transient
    full_logits = 2 * tokens * arch.vocab_size * (b + 4)  # policy (kept) + reference (transient)
    return {
        "length": length,
        "tokens_per_step": tokens,
        "scored_tokens": scored,
        "parameters": arch.parameter_count(),
        "lora_parameters": lora_params,
        "bytes": {
            "weights": weights,
            "lora_states": lora,
            "checkpoints": checkpoints,
            "reference_forward": reference_forward,
            "lm_head_backward": lm_head_backward,
            "layer_backward": layer_backward,
            "peak_allocated": peak,
            "with_reserve": peak + RESERVE_BYTES,
            "full_logits_without_fused_head": full_logits,
        },
        "per_token_layer_bytes": per_token_layer_bytes(arch, s),
    }


def estimate(arch: Architecture, lengths: list[int], s: StepSettings, card_gib: float) -> list[dict[str, Any]]:
    """estimate_step for each length, with whether it fits a card of `card_gib` usable GiB."""
    rows = []
    for length in lengths:
        row = estimate_step(arch, length, s)
        row["fits"] = row["bytes"]["with_reserve"] <= card_gib * GIB
        rows.append(row)
    return rows


def settings_dict(s: StepSettings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(s).items()}


def table_unit(rows: list[dict[str, Any]]) -> tuple[str, int]:
    """GiB, or MiB for shapes too small to show in GiB (the tiny model)."""
    return ("GiB", GIB) if max(r["bytes"]["peak_allocated"] for r in rows) >= GIB else ("MiB", 2 ** 20)


def table(rows: list[dict[str, Any]], card_gib: float) -> str:
    """The estimate as a plain-text table, one column per item (the unit is table_unit's)."""
    unit = table_unit(rows)[1]

    def gib(n: int) -> str:
        return f"{n / unit:.1f}"

    head = ["length", "weights", "LoRA", "checkpts", "ref fwd", "head bwd", "layer bwd", "peak",
            f"+{RESERVE_BYTES // GIB} reserve", f"fits {card_gib:g}", "full logits"]
    lines = [head]
    for r in rows:
        m = r["bytes"]
        lines.append([str(r["length"]), gib(m["weights"]), gib(m["lora_states"]), gib(m["checkpoints"]),
                      gib(m["reference_forward"]), gib(m["lm_head_backward"]), gib(m["layer_backward"]),
                      gib(m["peak_allocated"]), gib(m["with_reserve"]), "yes" if r["fits"] else "NO",
                      gib(m["full_logits_without_fused_head"])])
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)

