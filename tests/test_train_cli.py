"""`rps-train` sub-commands that take --config: a bad file is one line naming it and exit 2; --help lists it."""

from __future__ import annotations

import pytest

from rps_train.cli import main


@pytest.mark.parametrize("command, what", [("train", "training"), ("data", "data"), ("study", "study")])
def test_missing_config_is_one_line_and_exit_2(command, what, tmp_path, capsys):
    missing = str(tmp_path / "nonexistent.yaml")
    argv = [command, "--config", missing] + (["--out", str(tmp_path / "o")] if command == "study" else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {what} config {missing!r} does not exist\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command, what", [("train", "training"), ("data", "data")])
def test_config_equals_form_and_bad_files(command, what, tmp_path, capsys):
    assert main([command, f"--config={tmp_path}"]) == 2
    assert capsys.readouterr().err == f"error: {what} config {str(tmp_path)!r} is a directory, not a YAML file\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    assert main([command, "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {what} config {str(bad)!r} is not valid YAML: ") and err.count("\n") == 1
    assert main([command, "--config"]) == 2
    assert capsys.readouterr().err == "error: --config needs a file name\n"


@pytest.mark.parametrize("command", ["train", "data"])
def test_help_lists_config(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--config FILE" in capsys.readouterr().out
