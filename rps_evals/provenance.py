"""What can change a score, recorded with every result: the `provenance` and `usage` blocks.

Two results may only be compared when they were measured the same way (docs/metrics.md,
"Provenance"), so every front end (`rps-evals score`, the Inspect task, the lm-eval tasks, and
`rps-evals report` carrying theirs into results.json) builds its block here, with the same keys.
A value the front end cannot know is null, never a guess. The sandbox's Python and numpy are read
from the image itself (or, for the local backend, from this interpreter), not from its recipe.
"""

from __future__ import annotations

import math
import platform
from importlib import metadata
from typing import Any, Iterable, Sequence

from rps_evals.data import Dataset
from rps_evals.execution.protocol import wall_limit
from rps_evals.prompt import ProgramSynthesis, prompt_hash, prompt_version

GENERATION_KEYS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "num_choices")


def rps_evals_version() -> str:
    try:
        return metadata.version("rps-evals")
    except metadata.PackageNotFoundError:
        from rps_evals import __version__

        return __version__


def sandbox_info(backend: str | None, image: str | None = None) -> dict[str, Any]:
    """{backend, image {tag, id}, python, numpy, scipy} of where programs run. `docker`: the image's own
    versions (one short container per image and process); `local`: this interpreter's; any other
    (an Inspect sandbox provider such as k8s): only its name, the rest unknown."""
    backend = backend or "docker"
    if backend == "local":
        return {"backend": "local", "image": None, "python": platform.python_version(),
                "numpy": _installed("numpy"), "scipy": _installed("scipy")}
    if backend == "docker":
        from rps_evals.execution.image import image_identity

        return {"backend": "docker", **image_identity(image)}
    return {"backend": backend, "image": None, "python": None, "numpy": None, "scipy": None}


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# Inspect providers whose request is built by `openai_completion_params`, which has no top_k: a
# `--top-k` is dropped there and only a `top_k` in the request body (`--extra-body`) is sent.
TOP_K_IN_BODY_ONLY = ("vllm", "openai-api", "openai", "sglang", "ollama", "openrouter", "llama-cpp-python")


def sent_top_k(model: str | None, top_k: int | None, extra_body: dict[str, Any] | None) -> int | None:
    """The top_k an Inspect model's requests actually carry (null when none is sent)."""
    provider = (model or "").split("/", 1)[0]
    if provider in TOP_K_IN_BODY_ONLY:
        return (extra_body or {}).get("top_k")
    return top_k


def generation_settings(**settings: Any) -> dict[str, Any]:
    """The generation settings that change answers, each key present (null when not set)."""
    return {key: settings.get(key) for key in GENERATION_KEYS}


def build_provenance(dataset: Dataset, k: int, program_synthesis: ProgramSynthesis | str | None,
                     exec_timeout: float, sandbox: dict[str, Any], model: str | None = None,
                     generation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance block of one run. `program_synthesis` None means the prompt is unknown
    (a responses file scored by `rps-evals score`): prompt_version and prompt_hash are then null."""
    mode = ProgramSynthesis(program_synthesis) if program_synthesis is not None else None
    return {
        "rps_evals_version": rps_evals_version(),
        "dataset": dataset.name,
        "dataset_hash": dataset.file_hash,
        "k": k,
        "prompt_version": prompt_version(mode) if mode else None,
        "prompt_hash": prompt_hash(mode) if mode else None,
        "program_synthesis": mode.value if mode else None,
        "exec_timeout": float(exec_timeout),  # CPU seconds per call
        "exec_wall_limit": wall_limit(float(exec_timeout)),  # the wall-clock backstop per call
        "sandbox": sandbox,
        "model": model,
        "generation": generation,
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the ceil(fraction * n)-th smallest value (p50 of 10, 20, 30, 40 is 20)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _distribution(values: list[int]) -> dict[str, Any] | None:
    if not values:
        return None
    return {"attempts": len(values), "mean": sum(values) / len(values), "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9), "max": max(values)}


def usage_summary(records: Iterable[Any], wall_time_s: float | None = None,
                  total_tokens: int | None = None, output_tokens: int | None = None,
                  reasoning_tokens: int | None = None) -> dict[str, Any]:
    """The usage block: per-attempt output (and reasoning) token distributions over the attempts
    whose counts are known, the run's token totals and its wall time. Totals given by the front
    end (e.g. Inspect's usage of a request that returned several attempts at once) win over the
    sum of the per-attempt counts."""
    records = list(records)
    outputs = [r.output_tokens for r in records if r.output_tokens is not None]
    reasoning = [r.reasoning_tokens for r in records if r.reasoning_tokens is not None]
    # a sum is a total only if every attempt that generated something has its count
    every_count = outputs and all(r.output_tokens is not None for r in records if not r.missing and r.api_error is None)
    return {
        "output_tokens_per_attempt": _distribution(outputs),
        "reasoning_tokens_per_attempt": _distribution(reasoning),
        "output_tokens": output_tokens if output_tokens is not None else (sum(outputs) if every_count else None),
        "reasoning_tokens": reasoning_tokens if reasoning_tokens is not None else (
            sum(reasoning) if every_count and reasoning else None),
        "total_tokens": total_tokens,
        "wall_time_s": round(wall_time_s, 3) if wall_time_s is not None else None,
    }
