"""Method-level inference over replicate runs: hand-computed groups, the calibration simulation
(small here; benchmarks/replicates_calibration.py is the large one), and compare/gate end to end."""

import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from rps_evals.cli import main
from rps_evals.compare import compare_runs, mcnemar_exact
from rps_evals.data import load_dataset
from rps_evals.records import read_run, write_run
from rps_evals.replicates import (Components, Generator, holm, method_difference, noise_floor, power,
                                  sampling_halfwidth, variance_components)
from rps_evals.scoring import missing_record

PRIMARY = "attempts_from_executed_programs"


def test_two_vs_two_by_hand():
    # 2 tasks x 2 units; per-task rates in the comments
    a = [[1, 0, 0, 0],   # task 0: 0.5, task 1: 0.0 -> run rate 0.25
         [1, 1, 1, 0]]   # 1.0, 0.5 -> 0.75
    b = [[1, 1, 1, 1],   # 1.0, 1.0 -> 1.0
         [1, 1, 0, 1]]   # 1.0, 0.5 -> 0.75
    result = method_difference(np.array(a), np.array(b), np.array([0, 0, 1, 1]))
    assert result.a_runs == (0.25, 0.75) and result.b_runs == (1.0, 0.75)
    assert result.diff == 0.375  # 0.875 - 0.5
    # pooled run variance: (2 * 0.25^2 + 2 * 0.125^2) / (2 + 2 - 2) = 0.078125; the binomial floor is
    # lower: tasks' shared rates 0.875 and 0.5 -> (2 * 0.875 * 0.125 + 2 * 0.5 * 0.5) / 4^2 = 0.044921875
    assert result.run_variance == 0.078125
    # task x method: per-task differences 0.25 and 0.5 vary by 0.03125 (ddof 1), less than the run noise
    # within tasks ((0.125 + 0) / 2 and (0.125 + 0.125) / 2, mean 0.09375): no task component
    assert result.task_variance == 0.0
    se = math.sqrt(0.078125 * (1 / 2 + 1 / 2))
    assert result.se == pytest.approx(se, abs=1e-15) and result.df == 2
    tstat = 0.375 / se  # = 3 / sqrt(5); with 2 df, two-sided p = 1 - t / sqrt(t^2 + 2)
    assert tstat == pytest.approx(3 / math.sqrt(5))
    assert result.p_value == pytest.approx(1 - math.sqrt(9 / 19), abs=1e-12)  # 0.3117...
    assert result.p_value == pytest.approx(0.311753, abs=1e-6)
    critical = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # the t quantile with 2 df in closed form, 4.3027
    assert result.ci95 == pytest.approx((0.375 - critical * se, 0.375 + critical * se), abs=1e-12)
    assert result.noise_floor == 0.5  # A1 vs A2


def test_four_vs_four_by_hand_with_floor_and_task_component():
    a = [[1, 1, 0, 0], [1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 0, 0]]  # rates .5 .75 .25 .5
    b = [[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [0, 1, 1, 1]]  # rates .5 .75 .5 .75
    result = method_difference(np.array(a), np.array(b), np.array([0, 0, 1, 1]))
    assert result.diff == 0.125  # 0.625 - 0.5
    pooled = (0.125 + 0.0625) / 6  # sums of squares of A and B, 6 df: 0.03125
    floor = (2 * 0.5625 * 0.4375 + 2 * 0.5625 * 0.4375) / 16  # both tasks' shared rate is 4.5 / 8
    assert floor > pooled and result.run_variance == pytest.approx(floor, abs=1e-15)
    var_runs = floor * (1 / 4 + 1 / 4)
    # per-task differences -0.625 (task 0: B 0.25, A 0.875) and 0.875 (task 1: B 1.0, A 0.125)
    spread = ((-0.625 - 0.125) ** 2 + (0.875 - 0.125) ** 2) / 1  # 1.125
    within = ((0.1875 + 0.25) / 6 + (0.1875 + 0.0) / 6) / 2 * (1 / 4 + 1 / 4)  # run noise per task
    var_tasks = (spread - within) * (0.5**2 + 0.5**2)
    assert result.task_variance == pytest.approx(var_tasks, abs=1e-12)
    variance = var_runs + var_tasks
    df = variance**2 / (var_runs**2 / 6 + var_tasks**2 / 1)
    assert result.df == pytest.approx(df, abs=1e-9) and result.df == pytest.approx(1.1145, abs=1e-4)
    se = math.sqrt(variance)
    assert result.p_value == pytest.approx(2 * student_t.sf(0.125 / se, df), abs=1e-12)
    assert result.noise_floor == 0.5  # A: 0.75 - 0.25


def test_one_against_several_uses_the_pooled_run_variance():
    a = [[1, 0, 1, 0]]
    b = [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 1]]
    result = method_difference(np.array(a), np.array(b), np.array([0, 1, 2, 3]))
    assert result.df > 0 and result.a_runs == (0.5,) and noise_floor(result.a_runs, result.b_runs) == 0.25
    with pytest.raises(ValueError, match="at least 3 runs"):
        method_difference(np.array(a), np.array(a), np.array([0, 1, 2, 3]))


def test_identical_runs_never_give_p_zero():
    runs = np.array([[1, 1, 0, 0]] * 2)
    same = method_difference(runs, runs, np.array([0, 0, 1, 1]))
    assert (same.diff, same.p_value) == (0.0, 1.0)
    # one unit apart with no spread at all: the binomial floor keeps this far from significant
    shifted = method_difference(runs, np.array([[1, 1, 1, 0]] * 2), np.array([0, 0, 1, 1]))
    assert shifted.diff == 0.25 and shifted.p_value > 0.2


def test_no_units_is_no_difference():
    empty = np.zeros((2, 0))
    result = method_difference(empty, empty, np.array([], dtype=int))
    assert (result.diff, result.ci95, result.p_value, result.a_runs) == (0.0, (0.0, 0.0), 1.0, (0.0, 0.0))


def test_holm_by_hand():
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert holm({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def test_sampling_halfwidth_and_power_by_hand():
    assert sampling_halfwidth(0.8, 240) == pytest.approx(1.959964 * math.sqrt(0.16 / 240), abs=1e-6)
    components = Components(run=0.0016, task_run=0.0, attempt=0.0)
    # 4 runs per side: se = sqrt(0.0016 * 2 / 4) = 0.02828, an effect of 0.1 is 3.54 se; the t statistic
    # with 6 df, drawn directly: (normal + 3.54) / sqrt(chi2_6 / 6) beyond the 2.447 critical value
    rng = np.random.default_rng(0)
    draws = (rng.normal(size=400_000) + 0.1 / math.sqrt(0.0008)) / np.sqrt(rng.chisquare(6, 400_000) / 6)
    simulated = float((np.abs(draws) > student_t.ppf(0.975, 6)).mean())
    assert power(0.1, 4, 120, 2, components) == pytest.approx(simulated, abs=3e-3)
    assert power(0.1, 4, 120, 2, components) == pytest.approx(0.836, abs=1e-3)
    assert power(0.0, 4, 120, 2, components) == pytest.approx(0.05, abs=1e-9)


def test_variance_components_recover_the_generator():
    gen = Generator(tasks=200, attempts=2, task_run_sd=0.0, run_sd=0.3)
    rng = np.random.default_rng(3)
    runs = gen.runs(rng, 40, gen.task_effects(rng))
    found = variance_components(runs, gen.task_of_unit())
    # a logit run sd of 0.3 near a rate of 0.8 moves the rate by about 0.3 * 0.8 * 0.2 * ~0.85 (0.04)
    assert 0.025 < math.sqrt(found.run) < 0.055
    assert found.attempt == pytest.approx(float((runs.mean() * (1 - runs.mean()))), rel=0.35)


def test_calibration_small():
    """Same generator on both sides: the method-level test rejects at most ~5% and its interval
    covers a known difference; the single-run McNemar test calls two seeds different far more often."""
    gen = Generator(tasks=60)
    rng = np.random.default_rng(2026)
    task_of_unit = gen.task_of_unit()
    shift = 0.5
    truth = gen.rate_difference(shift, draws=400_000)
    rejected = mcnemar_rejected = covered = 0
    reps = 400
    for _ in range(reps):
        tasks = gen.task_effects(rng)
        a, b = gen.runs(rng, 4, tasks), gen.runs(rng, 4, tasks)
        rejected += method_difference(a, b, task_of_unit).p_value < 0.05
        only_a, only_b = int((a[0] * (1 - b[0])).sum()), int(((1 - a[0]) * b[0]).sum())
        mcnemar_rejected += mcnemar_exact(only_a, only_b) < 0.05
        low, high = method_difference(a, gen.runs(rng, 4, tasks, shift), task_of_unit).ci95
        covered += low <= truth <= high
    assert rejected / reps <= 0.06
    assert covered / reps >= 0.93
    assert mcnemar_rejected / reps > 0.12


# -- compare and gate on run directories ---------------------------------------------------------

DATASET = load_dataset("arc1:training").select(list(load_dataset("arc1:training").tasks)[:60])


def write_generated_run(path, units, temperature=None):
    """A run whose attempts_from_executed_programs units are `units` (task-major, 2 attempts each)."""
    records = []
    slots = [(task, a) for task in DATASET.tasks.values() for a in (1, 2)]
    for (task, attempt), executed in zip(slots, units):
        r = missing_record(task, attempt)
        r.missing = False
        if executed:
            r.source, r.program_status = "executed_program", "ok"
            r.predictions = [[[0]]] * task.num_tests
        records.append(r)
    provenance = None
    if temperature is not None:
        provenance = {"dataset": DATASET.name, "dataset_hash": DATASET.file_hash, "k": 2,
                      "generation": {"temperature": temperature}}
    write_run(path, DATASET, records, k=2, provenance=provenance)
    return str(path)


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """Four runs of one generator (A), four more of it (B), four with a +25-point shift (C)."""
    root = tmp_path_factory.mktemp("groups")
    gen = Generator(tasks=60, base_logit=0.4)
    rng = np.random.default_rng(12)  # any seed: 5% of them are false positives (docs/metrics.md)
    tasks = gen.task_effects(rng)
    made = {}
    for side, shift in (("a", 0.0), ("b", 0.0), ("c", 1.55)):
        made[side] = [write_generated_run(root / f"{side}{i}", run) for i, run in
                      enumerate(gen.runs(rng, 4, tasks, shift))]
    return made


def test_same_generator_not_called_different_though_one_pair_is(groups, tmp_path, capsys):
    pair_p = [compare_runs(read_run(a), read_run(b))["metrics"][PRIMARY]["mcnemar_p"]
              for a in groups["a"] for b in groups["b"]]
    assert min(pair_p) < 0.05  # one model against another: "different"
    out = tmp_path / "cmp.json"
    assert main(["compare", *groups["a"], "--vs", *groups["b"], "--out", str(out)]) == 0
    text = capsys.readouterr().out
    row = json.loads(out.read_text())["metrics"][PRIMARY]
    assert row["level"] == "method" and row["p_value"] >= 0.05 and row["p_holm"] == row["p_value"]
    assert len(row["a_runs"]) == len(row["b_runs"]) == 4
    assert row["ci95"][0] < 0 < row["ci95"][1]
    assert row["noise_floor"] == max(max(r) - min(r) for r in (row["a_runs"], row["b_runs"]))
    assert f"verdict ({PRIMARY}): no difference shown between the methods" in text
    lines = text.splitlines()
    assert lines[lines.index(next(l for l in lines if l.startswith("metric "))) + 1].startswith(PRIMARY + "*")


def test_a_25_point_method_effect_is_called_different(groups, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", *groups["a"], "--vs", *groups["c"], "--out", str(out)]) == 0
    comparison = json.loads(out.read_text())
    row = comparison["metrics"][PRIMARY]
    assert row["p_value"] < 0.001 and 0.15 < row["diff"] < 0.35 and row["ci95"][0] > 0
    assert row["verdict"].startswith("B above A: the methods differ")
    others = [m for m in comparison["metrics"] if m != PRIMARY]
    raw = {m: comparison["metrics"][m]["p_value"] for m in others}
    assert {m: comparison["metrics"][m]["p_holm"] for m in others} == pytest.approx(holm(raw))
    assert comparison["runs"] == {"a": [[r] for r in groups["a"]], "b": [[r] for r in groups["c"]]}


def test_gate_groups_fail_only_beyond_noise(groups, capsys):
    metric = f"{PRIMARY}=0"
    assert main(["gate", "--baseline", *groups["a"], "--candidate", *groups["b"], "--max-drop", metric]) == 0
    out = capsys.readouterr().out
    assert "gate: PASS" in out and "noise" in out
    assert main(["gate", "--baseline", *groups["c"], "--candidate", *groups["a"], "--max-drop", metric]) == 1
    assert "gate: FAIL" in capsys.readouterr().out
    # a drop beyond the allowance but within the noise floor passes
    assert main(["gate", "--baseline", *groups["c"], "--candidate", *groups["a"],
                 "--max-drop", f"{PRIMARY}=0.5"]) == 0


def test_one_run_each_says_it_compares_models(tmp_path, capsys):
    units_a = [1, 0] * 60
    units_b = [1, 1] * 30 + [1, 0] * 30
    a = write_generated_run(tmp_path / "a", units_a, temperature=0.6)
    b = write_generated_run(tmp_path / "b", units_b, temperature=0.6)
    out = tmp_path / "cmp.json"
    assert main(["compare", a, b, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "note: one run per side: the p-values compare these two models and ignore seed variation" in text
    comparison = json.loads(out.read_text())
    assert comparison["level"] == "model" and "one run per side" in comparison["notes"][-1]
    row = comparison["metrics"][PRIMARY]
    assert (row["a_runs"], row["b_runs"]) == ([0.5], [0.75])
    assert row["sampling_halfwidth"] == pytest.approx(1.959964 * math.sqrt(0.625 * 0.375 / 120), abs=1e-6)
    assert row["p_value"] == row["mcnemar_p"] == pytest.approx(2 ** -29, rel=1e-9)  # 30 only-B, 0 only-A
    assert f"+-{100 * row['sampling_halfwidth']:.1f}" in text


def test_sampling_passes_average_into_one_replicate(groups, tmp_path):
    out = tmp_path / "cmp.json"
    passes_a, passes_b = ",".join(groups["a"][:2]), ",".join(groups["b"][:2])
    assert main(["compare", passes_a, groups["a"][2], "--vs", passes_b, groups["b"][2], "--out", str(out)]) == 0
    row = json.loads(out.read_text())["metrics"][PRIMARY]
    a_rates = [compare_runs(read_run(r), read_run(r))["metrics"][PRIMARY]["a"]["rate"] for r in groups["a"][:3]]
    assert row["a_runs"] == pytest.approx([(a_rates[0] + a_rates[1]) / 2, a_rates[2]])
    assert main(["compare", passes_a, "--vs", passes_b, "--out", str(out)]) == 0  # one model each, sampled twice
    assert json.loads(out.read_text())["level"] == "model"


def test_usage_errors(groups, capsys):
    assert main(["compare", *groups["a"][:3]]) == 2
    assert "compare takes two runs (compare A B) or groups" in capsys.readouterr().err
    assert main(["compare", *groups["a"][:2], "--vs", groups["b"][0], "--primary", "nope"]) == 2
    assert "unknown --primary metric 'nope'" in capsys.readouterr().err
    assert main(["gate", groups["a"][0], "--baseline", groups["b"][0], "--candidate", groups["b"][1],
                 "--max-drop", f"{PRIMARY}=0"]) == 2
    assert "give the candidate run(s) once" in capsys.readouterr().err


def test_plan_with_stated_components(capsys):
    assert main(["plan", "--run-sd", "0.04", "--task-run-sd", "0", "--attempt-sd", "0", "--tasks", "120",
                 "--attempts", "2", "--effect", "0.1"]) == 0
    out = capsys.readouterr().out
    # one run's rate: sd 0.04 whatever the tasks; 4 runs per side as in the power test above: 0.836
    assert "one run's rate on 120 tasks x 2 units: sd 0.040" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["4"])
    assert row[1] == f"{power(0.1, 4, 120, 2, Components(0.0016, 0, 0)):.3f}" == "0.836"
    assert "120 tasks x 2 units: 4 runs per side reach 0.8 power" in out  # 3 runs: 0.636
    # no task or attempt noise: more tasks or attempts cannot help
    assert "240 tasks x 4 units: 4 runs per side reach 0.8 power" in out


def test_plan_from_pilot_runs(groups, capsys):
    assert main(["plan", "--pilot", *groups["a"], "--effect", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "variance components (4 pilot runs, 60 tasks, k=2)" in out
    assert "note: 4 pilot runs give the run variance 3 degrees of freedom" in out
    assert main(["plan", "--pilot", *groups["a"], "--run-sd", "0.1", "--effect", "0.1"]) == 2
    assert "either --pilot runs or stated" in capsys.readouterr().err
    assert main(["plan", "--pilot", groups["a"][0], "--effect", "0.1"]) == 2
    assert "--pilot needs at least 2 runs" in capsys.readouterr().err
    assert main(["plan", "--pilot", *groups["a"], "--metric", "nope", "--effect", "0.1"]) == 2
    assert "unknown --metric 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_an_inspect_log_compares_like_its_run_directory(tmp_path, capsys):
    """compare reads an Inspect log as `report` does: the demo replayed through Inspect against the
    same responses scored by the core differs by nothing."""
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval

    from inspect_support import DEMO_IDS, core_score
    from rps_evals.arc1 import arc1
    from rps_evals.inspect_eval.replay import demo_responses_path

    ids = DEMO_IDS[:3]
    core_score(demo_responses_path(), tmp_path / "core", task_ids=ids, timeout=10)
    task = arc1(split="training", task_ids=",".join(ids), sandbox="local", exec_timeout=10)
    (log,) = inspect_eval(task, model="rps/replay", display="none", log_dir=str(tmp_path / "logs"))
    out = tmp_path / "cmp.json"
    assert main(["compare", log.location, "--vs", str(tmp_path / "core"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics[PRIMARY]["a"]["of"] == 6 and metrics[PRIMARY]["only_a"] == metrics[PRIMARY]["only_b"] == 0
    assert all(row["diff"] == 0 for row in metrics.values())
