"""Shared test fixtures. No test may reach a network: the Hub is switched off for the whole session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    """Directory of a tiny random Qwen3 model + tokenizer with a chat template (tests/tiny_model.py).

    Loadable by transformers, PEFT, TRL, Inspect's `hf/` provider (`-M model_path=DIR`) and lm-eval's
    `hf` backend (`pretrained=DIR`)."""
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tiny_model import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))
