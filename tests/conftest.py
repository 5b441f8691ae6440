"""Shared test fixtures. No test may reach a network: the Hub is switched off for the whole session.

With RPS_EVALS_REQUIRE_ALL=1 (set by .ci/run) nothing may skip: every skip, wherever it comes from
(pytest.skip, importorskip, skipif; a missing Docker engine, image, browser or optional package),
is reported as a failure that names what was missing. One hook does it for every skip site.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

REQUIRE_ALL = os.environ.get("RPS_EVALS_REQUIRE_ALL", "") not in ("", "0")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _as_failure(report, where: str) -> None:
    reason = _skip_reason(report).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"RPS_EVALS_REQUIRE_ALL=1: {where} would have skipped, so it fails: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        _as_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped:  # a module-level importorskip / pytest.skip(allow_module_level)
        _as_failure(report, collector.nodeid)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    """Directory of a tiny random Qwen3 model + tokenizer with a chat template (rps_train/tiny.py).

    Loadable by transformers, PEFT, TRL, Inspect's `hf/` provider (`-M model_path=DIR`) and lm-eval's
    `hf` backend (`pretrained=DIR`)."""
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from rps_train.tiny import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))
