"""The gate refuses a baseline measured otherwise than the candidate (dataset hash, k, prompt hash,
sampling settings), naming every difference; compare only warns about a sampling difference."""

import json

import pytest

from rps_evals.cli import main
from rps_evals.compare import check_gate_provenance, sampling_differences
from rps_evals.data import load_dataset
from rps_evals.records import InputError, write_run
from rps_evals.scoring import missing_record

DATASET = load_dataset("arc1:training").select(list(load_dataset("arc1:training").tasks)[:4])


def provenance(prompt_hash="a" * 64, k=2, **generation):
    settings = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_tokens": None, "seed": 1, "num_choices": 2}
    return {"dataset": DATASET.name, "dataset_hash": DATASET.file_hash, "k": k, "prompt_version": "arc-prog-v1",
            "prompt_hash": prompt_hash, "program_synthesis": "allowed", "exec_timeout": 2.0,
            "sandbox": {"backend": "docker", "image": None, "python": "3.11.2", "numpy": "1.24.2"},
            "model": "openai-api/vllm/candidate", "generation": {**settings, **generation}}


def run(path, block):
    write_run(path, DATASET, [missing_record(t, a) for t in DATASET.tasks.values() for a in (1, 2)], k=2,
              provenance=block)
    return str(path)


def gate(capsys, baseline, candidate):
    code = main(["gate", candidate, "--baseline", baseline, "--max-drop", "task_solves=0.1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_different_sampling_setting_is_refused_and_named(tmp_path, capsys):
    baseline = run(tmp_path / "base", provenance())
    candidate = run(tmp_path / "cand", provenance(temperature=0.6, top_p=0.95))
    code, out, err = gate(capsys, baseline, candidate)
    assert (code, out) == (2, "")
    assert err == ("rps-evals: error: the runs differ in how they were measured, so the gate cannot "
                   "compare them: temperature: baseline 0.7, candidate 0.6; top_p: baseline 0.8, candidate 0.95 "
                   "(gate against a baseline recorded with the same settings)\n")


def test_prompt_hash_and_k_are_refused_without_strict(tmp_path, capsys):
    baseline = run(tmp_path / "base", provenance())
    code, _, err = gate(capsys, baseline, run(tmp_path / "cand", provenance(prompt_hash="b" * 64)))
    assert code == 2 and f"prompt_hash: baseline '{'a' * 64}', candidate '{'b' * 64}'" in err
    other_k = provenance(max_tokens=4000)
    other_k["k"] = 3
    code, _, err = gate(capsys, baseline, run(tmp_path / "cand3", other_k))
    assert code == 2 and "k: baseline 2, candidate 3; max_tokens: baseline unknown, candidate 4000" in err


def test_another_seed_is_the_same_measurement(tmp_path, capsys):
    baseline = run(tmp_path / "base", provenance(seed=1))
    code, out, err = gate(capsys, baseline, run(tmp_path / "cand", provenance(seed=2, num_choices=1)))
    assert (code, err) == (0, "") and out.endswith("gate: PASS\n") and "WARNING" not in out


def test_unknown_settings_are_not_a_difference_and_compare_warns(tmp_path, capsys):
    known, unknown = provenance(), provenance()
    unknown["generation"] = None  # e.g. a run scored from a responses file
    assert sampling_differences({"provenance": known}, {"provenance": unknown}) == []
    check_gate_provenance({"provenance": known}, {"provenance": unknown})
    with pytest.raises(InputError, match="top_k: baseline 20, candidate 40"):
        check_gate_provenance({"provenance": known}, {"provenance": provenance(top_k=40)})
    a, b = run(tmp_path / "a", known), run(tmp_path / "b", provenance(top_k=40))
    out_json = tmp_path / "cmp.json"
    assert main(["compare", a, b, "--out", str(out_json)]) == 0
    assert "WARNING: the runs differ in sampling setting top_k: A 20, B 40" in capsys.readouterr().out
    assert json.loads(out_json.read_text())["warnings"] == ["WARNING: the runs differ in sampling setting top_k: A 20, B 40"]
    assert main(["compare", a, b, "--strict"]) == 2
