"""CI cannot pass by skipping: with RPS_EVALS_REQUIRE_ALL=1 (set by .ci/run) every kind of skip in
the suite (pytest.skip, importorskip at module level, skipif) fails and names what was missing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

SKIPPING = '''
import pytest

def test_engine():
    pytest.skip("no Docker engine answers")

@pytest.mark.skipif(True, reason="needs Debian's chromium")
def test_browser():
    pass

def test_fine():
    pass
'''
MODULE_SKIP = 'import pytest\npytest.importorskip("no_such_module_rps")\n\ndef test_never():\n    pass\n'


def run_suite(tmp_path: Path, require_all: bool) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "RPS_EVALS_REQUIRE_ALL"}
    if require_all:
        env["RPS_EVALS_REQUIRE_ALL"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
                           "--continue-on-collection-errors", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_without_it_missing_parts_skip(tmp_path):
    done = run_suite(tmp_path, require_all=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped" in done.stdout


def test_with_it_every_skip_fails_naming_what_is_missing(tmp_path):
    done = run_suite(tmp_path, require_all=True)
    assert done.returncode == 1
    assert "1 failed, 1 passed, 2 errors" in done.stdout
    out = done.stdout
    assert "test_skipping.py::test_engine would have skipped, so it fails: no Docker engine answers" in out
    assert "test_skipping.py::test_browser would have skipped, so it fails: needs Debian's chromium" in out
    assert "test_module_skip.py would have skipped, so it fails: could not import 'no_such_module_rps'" in out
