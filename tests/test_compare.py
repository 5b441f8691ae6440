"""Paired comparison and the regression gate on two constructed runs with a known McNemar p."""

import json
import math

import pytest
from scipy.stats import binomtest

from rps_evals.cli import main
from rps_evals.compare import compare_runs, mcnemar_exact, wilson_interval
from rps_evals.data import load_dataset
from rps_evals.records import read_run, write_run
from rps_evals.scoring import missing_record

DATASET = load_dataset("arc1:training").select(list(load_dataset("arc1:training").tasks)[:20])
SLOTS = [(t, a) for t in DATASET.tasks.values() for a in (1, 2)]  # 40 attempts
# executed-program attempts: both runs on slots 0-19; only A on 20-21; only B on 22-31; neither 32-39
EXEC_A = set(range(0, 22))
EXEC_B = set(range(0, 20)) | set(range(22, 32))
P_EXECUTED = 2 * (1 + 12 + 66) / 2**12  # exact two-sided binomial, 2 of 12 discordant


def make_run(path, executed):
    records = []
    for i, (task, a) in enumerate(SLOTS):
        r = missing_record(task, a)
        r.missing = False
        if i in executed:
            r.source, r.program_status = "executed_program", "ok"
            r.predictions = [[[0]]] * task.num_tests
        records.append(r)
    write_run(path, DATASET, records, k=2)
    return path


@pytest.fixture
def runs(tmp_path):
    return make_run(tmp_path / "a", EXEC_A), make_run(tmp_path / "b", EXEC_B)


def test_known_mcnemar_p_and_paired_counts(runs):
    comparison = compare_runs(read_run(runs[0]), read_run(runs[1]))
    row = comparison["metrics"]["attempts_from_executed_programs"]
    assert (row["both"], row["only_a"], row["only_b"], row["neither"]) == (20, 2, 10, 8)
    assert row["mcnemar_p"] == pytest.approx(P_EXECUTED, abs=1e-12)
    assert P_EXECUTED == pytest.approx(0.03857421875)
    assert row["diff"] == pytest.approx(8 / 40)
    low, high = row["diff_ci95"]
    assert low < 0.2 < high  # whole tasks are resampled, so the interval is wide with 20 tasks
    # task level: A has all-executed on tasks 0-9 (slots 0-19) + task 10 (slots 20, 21); B on tasks 0-9, 11-15
    tasks = comparison["metrics"]["tasks_all_attempts_executed"]
    assert (tasks["both"], tasks["only_a"], tasks["only_b"], tasks["neither"]) == (10, 1, 5, 4)
    assert tasks["mcnemar_p"] == pytest.approx(2 * (1 + 6) / 2**6)


def test_wilson_and_mcnemar_edges():
    assert mcnemar_exact(0, 0) == 1.0
    low, high = wilson_interval(214, 240)
    assert (round(low, 4), round(high, 4)) == (0.846, 0.925)  # by hand: 0.8855 -/+ 0.0395
    scipy_ci = binomtest(214, 240).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and math.isclose(wilson_interval(10, 10)[1], 1.0)


def test_compare_cli_writes_json(runs, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "both 20/40   only A 2/40   only B 10/40   neither 8/40   exact McNemar p = 0.0386" in text
    assert json.loads(out.read_text())["metrics"]["attempts_from_executed_programs"]["only_b"] == 10


@pytest.mark.parametrize("max_drop, alpha, code", [
    ("0.1", None, 1),   # dropped 20 points, 10 allowed
    ("0.25", None, 0),  # within the allowance
    ("0.1", "0.05", 1),  # p = 0.0386 < 0.05: significant, fails
    ("0.1", "0.01", 0),  # p = 0.0386 >= 0.01: not significant, passes
])
def test_gate(runs, capsys, max_drop, alpha, code):
    baseline, candidate = runs[1], runs[0]  # B executed more; A is the regressed candidate
    args = ["gate", str(candidate), "--baseline", str(baseline),
            "--max-drop", f"attempts_from_executed_programs={max_drop}"]
    if alpha:
        args += ["--alpha", alpha]
    assert main(args) == code
    out = capsys.readouterr().out
    assert ("gate: FAIL" in out) == (code == 1)
    assert "attempts_from_executed_programs" in out and "20.0%" in out


def test_gate_no_change_is_zero_not_negative_zero(runs, capsys):
    metric = "attempts_from_executed_programs"
    assert main(["gate", str(runs[0]), "--baseline", str(runs[0]), "--max-drop", f"{metric}=0"]) == 0
    assert [l for l in capsys.readouterr().out.splitlines() if not l.startswith("WARNING")] == [
        f"{'metric':<{len(metric) + 2}}    baseline   candidate     drop  allowed        p  verdict",
        f"{metric}         55.0%       55.0%     0.0%     0.0%        1  ok",
        "gate: PASS",
    ]


def test_gate_warnings_name_baseline_and_candidate(runs, capsys):
    set_results(runs[0], None)  # an older run without provenance as the baseline
    set_results(runs[1], provenance())
    assert main(["gate", str(runs[1]), "--baseline", str(runs[0]), "--max-drop", "task_solves=1"]) == 0
    warnings = [l for l in capsys.readouterr().out.splitlines() if l.startswith("WARNING")]
    assert warnings[0] == ("WARNING: prompt_hash is unknown for run baseline (baseline unknown, candidate '"
                           + "a" * 64 + "'): cannot check that the runs were measured the same way")
    assert not [l for l in warnings if " A " in l or " B " in l]


def test_gate_lower_is_better_metric_rises(runs, capsys):
    # invalid attempts rise from 10/40 (B) to 18/40 (A): a 20-point drop in quality
    assert main(["gate", str(runs[0]), "--baseline", str(runs[1]), "--max-drop", "invalid_attempts=0.1"]) == 1
    assert main(["gate", str(runs[1]), "--baseline", str(runs[0]), "--max-drop", "invalid_attempts=0.0"]) == 0


def test_gate_usage_errors(runs, capsys, tmp_path):
    assert main(["gate", str(runs[0]), "--baseline", str(runs[1])]) == 2
    assert "give at least one --max-drop" in capsys.readouterr().err
    assert main(["gate", str(runs[0]), "--baseline", str(runs[1]), "--max-drop", "nonsense=0.1"]) == 2
    assert "unknown metric(s) for --max-drop: nonsense" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["gate", str(runs[0]), "--baseline", str(runs[1]), "--max-drop", "task_solves"])
    assert exc.value.code == 2
    assert main(["compare", str(runs[0]), str(tmp_path / "nothing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_runs_on_different_datasets_refuse_to_pair(runs, tmp_path):
    other = load_dataset("arc1:evaluation").select(["00576224"])
    write_run(tmp_path / "c", other, [], k=2)
    assert main(["compare", str(runs[0]), str(tmp_path / "c")]) == 2


def test_runs_on_different_task_sets_name_the_counts_and_tasks(runs, tmp_path, capsys):
    """The same dataset and k but 3 tasks against 20: the error says so and names tasks only in B."""
    ids = list(DATASET.tasks)
    subset = DATASET.select(ids[:3])
    write_run(tmp_path / "c", subset, [missing_record(t, a) for t in subset.tasks.values() for a in (1, 2)], k=2)
    assert main(["compare", str(tmp_path / "c"), str(runs[0])]) == 2
    only_b = sorted(ids[3:])
    assert capsys.readouterr().err == (
        f"rps-evals: error: runs cover different tasks: A has 3 tasks, B has 20; only in B: {', '.join(only_b[:5])} (17 in all) "
        "(score both on the same tasks)\n")


# --- comparability: what the runs record about how they were measured ---------------------------
def provenance(**changes):
    block = {
        "rps_evals_version": "0.1.0", "dataset": "arc1:training", "dataset_hash": DATASET.file_hash, "k": 2,
        "prompt_version": "arc-prog-v1", "prompt_hash": "a" * 64, "program_synthesis": "allowed",
        "exec_timeout": 2.0,
        "sandbox": {"backend": "docker", "image": {"tag": "rps-sandbox:1", "id": "sha256:1"},
                    "python": "3.11.2", "numpy": "1.24.2"},
        "model": None, "generation": None,
    }
    for name, value in changes.items():
        if name == "numpy":
            block["sandbox"] = {**block["sandbox"], "numpy": value}
        else:
            block[name] = value
    return block


def set_results(run, provenance_block=None, drop=(), **top_level):
    """Rewrite a run's results.json: its provenance block (None: none, as in an older run)."""
    path = run / "results.json"
    result = json.loads(path.read_text())
    result.pop("provenance", None)
    if provenance_block is not None:
        result["provenance"] = provenance_block
    for key in drop:
        result.pop(key, None)
    result.update(top_level)
    path.write_text(json.dumps(result))


@pytest.mark.parametrize("changes, message", [
    ({"dataset_hash": "f" * 64}, f"the runs differ in dataset_hash: A '{DATASET.file_hash}', B '{'f' * 64}'"),
    ({"k": 3}, "the runs differ in k: A 2, B 3; they cannot be paired"),
])
def test_different_dataset_hash_or_k_refuse(runs, capsys, changes, message):
    set_results(runs[0], provenance())
    set_results(runs[1], provenance(**changes))
    assert main(["compare", str(runs[0]), str(runs[1])]) == 2
    assert message in capsys.readouterr().err
    args = ["gate", str(runs[1]), "--baseline", str(runs[0]), "--max-drop", "task_solves=0.1"]
    assert main(args) == 2
    assert "the runs differ in" in capsys.readouterr().err


def test_top_level_dataset_hash_of_an_older_run_is_checked_too(runs, capsys):
    set_results(runs[0], None)
    set_results(runs[1], None, dataset_hash="0" * 64)
    assert main(["compare", str(runs[0]), str(runs[1])]) == 2
    assert f"the runs differ in dataset_hash: A '{DATASET.file_hash}', B '{'0' * 64}'" in capsys.readouterr().err


@pytest.mark.parametrize("changes, line", [
    ({"exec_timeout": 10.0}, "WARNING: the runs differ in exec_timeout: A 2.0, B 10.0"),
    ({"prompt_hash": "b" * 64}, f"WARNING: the runs differ in prompt_hash: A '{'a' * 64}', B '{'b' * 64}'"),
    ({"program_synthesis": "off"}, "WARNING: the runs differ in program_synthesis: A 'allowed', B 'off'"),
    ({"numpy": "2.1.3"}, "WARNING: the runs differ in sandbox numpy: A '1.24.2', B '2.1.3'"),
])
def test_differences_that_can_move_a_score_warn_and_strict_refuses(runs, capsys, tmp_path, changes, line):
    set_results(runs[0], provenance())
    set_results(runs[1], provenance(**changes))
    out = tmp_path / "cmp.json"
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [l for l in printed if l.startswith("WARNING")] == [line]
    assert json.loads(out.read_text())["warnings"] == [line]
    assert main(["compare", str(runs[0]), str(runs[1]), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "--strict: the runs may not be comparable" in err and line in err
    gate_args = ["gate", str(runs[1]), "--baseline", str(runs[0]), "--max-drop", "task_solves=0.5"]
    if "prompt_hash" in changes:  # a gate refuses this one outright (tests/test_gate_provenance.py)
        assert main(gate_args) == 2
        return
    assert main(gate_args) == 0  # gate calls the runs what its table does
    gate_line = line.replace(": A ", ": baseline ").replace(", B ", ", candidate ")
    assert capsys.readouterr().out.splitlines()[0] == gate_line and gate_line != line
    assert main(gate_args + ["--strict"]) == 2


def test_same_provenance_gives_no_warning(runs, capsys):
    set_results(runs[0], provenance())
    set_results(runs[1], provenance())
    assert main(["compare", str(runs[0]), str(runs[1]), "--strict"]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_runs_without_provenance_compare_with_warnings_not_a_crash(runs, capsys):
    set_results(runs[0], None)  # an older run: dataset_hash and attempts_per_task only, at the top level
    set_results(runs[1], provenance(), drop=("dataset_hash", "attempts_per_task"))
    assert main(["compare", str(runs[0]), str(runs[1])]) == 0
    warnings = [l for l in capsys.readouterr().out.splitlines() if l.startswith("WARNING")]
    assert warnings == [
        "WARNING: prompt_hash is unknown for run A (A unknown, B '" + "a" * 64 + "'): "
        "cannot check that the runs were measured the same way",
        "WARNING: program_synthesis is unknown for run A (A unknown, B 'allowed'): "
        "cannot check that the runs were measured the same way",
        "WARNING: exec_timeout is unknown for run A (A unknown, B 2.0): "
        "cannot check that the runs were measured the same way",
        "WARNING: sandbox numpy is unknown for run A (A unknown, B '1.24.2'): "
        "cannot check that the runs were measured the same way",
    ]
    assert main(["compare", str(runs[0]), str(runs[1]), "--strict"]) == 2
    set_results(runs[1], None, dataset_hash=DATASET.file_hash, attempts_per_task=2)
    assert main(["compare", str(runs[0]), str(runs[1])]) == 0
    assert "WARNING: exec_timeout is unknown for both runs (A unknown, B unknown)" in capsys.readouterr().out


def test_runs_scored_before_hardcoded_detection_are_flagged(runs, capsys):
    set_results(runs[0], provenance())
    set_results(runs[1], provenance())
    path = runs[0] / "results.json"
    result = json.loads(path.read_text())
    del result["metrics"]["hardcoded_output_programs"]
    path.write_text(json.dumps(result))
    assert main(["compare", str(runs[0]), str(runs[1])]) == 0
    assert ("WARNING: run A was scored before hard-coded programs were detected: its "
            "attempts_from_general_programs counts every executed program") in capsys.readouterr().out
