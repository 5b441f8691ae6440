"""The tested version ranges of the libraries whose internals we use, checked where they are imported.

rps-evals reads a few non-public parts of its front-end libraries (Inspect's active model and
sandbox classes, lm-eval's `_instances` / `_metric_fn_list`, TRL's "ref" adapter), which may change
in any release. The ranges are pyproject's (the installed package's metadata, one source): an
installed version outside them is an error naming the range, not a confusing failure later.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata


class UnsupportedVersion(ImportError):
    """An installed library's version is outside the range rps-evals is tested with."""


@lru_cache(maxsize=None)
def _ranges() -> dict[str, str]:
    """Distribution name -> its version specifier, from rps-evals' own requirements (all extras)."""
    from packaging.requirements import Requirement

    ranges: dict[str, str] = {}
    try:
        requirements = metadata.requires("rps-evals") or []
    except metadata.PackageNotFoundError:  # a source tree that was never installed: nothing to check
        requirements = []
    for line in requirements:
        requirement = Requirement(line)
        if str(requirement.specifier):
            ranges[_canonical(requirement.name)] = str(requirement.specifier)
    return ranges


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def supported_range(distribution: str) -> str | None:
    return _ranges().get(_canonical(distribution))


@lru_cache(maxsize=None)
def require_supported(distribution: str) -> None:
    """Raise UnsupportedVersion if `distribution` is installed at a version outside its tested range."""
    from packaging.specifiers import SpecifierSet

    spec = supported_range(distribution)
    try:
        installed = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return  # its own import fails with the usual message
    if spec and not SpecifierSet(spec).contains(installed, prereleases=True):
        readable = ", ".join(sorted((str(s) for s in SpecifierSet(spec)), reverse=True))
        raise UnsupportedVersion(
            f"rps-evals is tested with {distribution} {readable}, but {distribution} "
            f"{installed} is installed; rps-evals uses some of its internals, which may differ in "
            f"other versions. Install a tested one: pip install '{distribution}{spec}'")
