"""Tested version ranges: pyproject bounds the libraries whose internals we use, and an installed
version outside its range is an error naming the range."""

from importlib import metadata

import pytest

from rps_evals import versions

INTERNALS_USED = ("inspect-ai", "lm-eval", "trl", "peft", "transformers")


@pytest.fixture(autouse=True)
def fresh_checks():
    versions.require_supported.cache_clear()
    yield
    versions.require_supported.cache_clear()


@pytest.mark.parametrize("distribution", INTERNALS_USED)
def test_every_library_whose_internals_we_use_has_an_upper_bound(distribution):
    spec = versions.supported_range(distribution)
    assert spec is not None and "<" in spec, f"{distribution}: {spec!r}"


def test_a_version_outside_the_range_is_an_error_naming_it(monkeypatch):
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "9.0.0" if name == "trl" else real(name))
    with pytest.raises(versions.UnsupportedVersion) as info:
        versions.require_supported("trl")
    message = str(info.value)
    assert "trl 9.0.0 is installed" in message
    assert f"pip install 'trl{versions.supported_range('trl')}'" in message
    assert ">=1.16" in message and "<=" in message


def test_a_version_inside_the_range_passes(monkeypatch):
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.16.0" if name == "trl" else real(name))
    versions.require_supported("trl")


def test_a_library_that_is_not_installed_is_left_to_its_own_import(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    versions.require_supported("trl")
