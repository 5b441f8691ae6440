"""A tiny random Qwen3 model and a locally trained tokenizer, for runs that cannot reach a model hub.

`rps-train tiny-model --out DIR` writes one (configs/study_tiny.yaml and the tests use it).

Everything that loads a causal LM from a directory (transformers, PEFT, TRL, Inspect's `hf/`
provider, lm-eval's `hf` backend) can load the directory this writes. The weights are random
(seeded), so outputs are gibberish; tests use it to check plumbing, never quality.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Qwen-style chat markup. The template is the ChatML subset Qwen3 uses without tools or thinking.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EXTRA_TOKENS = ["<think>", "</think>"]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
VOCAB_SIZE = 512
HIDDEN_SIZE = 64
NUM_LAYERS = 2
SEED = 0


def _corpus() -> list[str]:
    """Text that looks like ARC prompts and answers, so common pieces become single tokens."""
    lines = [
        "You are solving an ARC-AGI puzzle. Each example maps an input grid to an output grid.",
        "Example 1 input: Example 1 output: Test input 1: Find the rule and apply it.",
        "Reasoning: the rule you found and how you checked it against the examples.",
        "Python program:", "```python", "def transform(grid):", "    return [row[:] for row in grid]", "```",
        "Predicted test outputs:", "```json", "import numpy as np", "for r in range(len(grid)):",
        "user assistant system", "The answer is", "</think>", "<think>",
    ]
    for n in range(10):
        lines.append(" [" + ", ".join(str((n + k) % 10) for k in range(12)) + "],")
    return lines * 20


def build_tiny_qwen3(path: str | os.PathLike) -> Path:
    """Write a tiny random Qwen3 model (hidden 64, 2 layers) and its tokenizer to `path`.

    Idempotent: if `path` already holds a built model it is returned as is. Returns the path.
    """
    path = Path(path)
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    # Byte-level BPE: every string is encodable (no unknown token), like Qwen's own tokenizer.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS) - len(EXTRA_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=32768,
    )
    tokenizer.add_tokens(EXTRA_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=2 * HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32768,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    (path / "TINY_MODEL.json").write_text(json.dumps({"seed": SEED, "hidden_size": HIDDEN_SIZE,
                                                      "num_layers": NUM_LAYERS}) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rps-train tiny-model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write the model and tokenizer to")
    args = parser.parse_args(argv)
    print(build_tiny_qwen3(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
