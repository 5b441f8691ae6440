"""Helpers for the tests that need a real Docker engine (pytest -m docker).

They skip, with the engine's own error as the reason, only when no engine answers (and fail instead
under RPS_EVALS_REQUIRE_ALL=1, as in .ci/run: tests/conftest.py); an engine that answers without the
sandbox image gets it built (CI builds it beforehand: `rps-evals sandbox build --mode offline`).
"""

from __future__ import annotations

import pytest

from rps_evals.execution import SandboxUnavailable
from rps_evals.execution.image import LABEL, docker_client, ensure_image

_image: list[str] = []


def require_engine():
    """A docker client, or skip the test: the only reason a docker test may skip."""
    try:
        return docker_client(timeout=30)
    except SandboxUnavailable as exc:
        pytest.skip(f"no Docker engine answers: {exc}")


def require_image() -> str:
    require_engine()
    if not _image:
        _image.append(ensure_image(quiet=True))
    return _image[0]


def containers_labelled(**labels: str) -> list:
    """Sandbox containers (running or not) that carry all of `labels` (suffixes of LABEL)."""
    client = require_engine()
    filters = [LABEL] + [f"{LABEL}.{key}={value}" for key, value in labels.items()]
    return client.containers.list(all=True, filters={"label": filters})
