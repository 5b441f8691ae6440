"""The arc_prog YAMLs agree with the core, and the lm-eval glue's small decisions hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lmeval_support import TASKS_DIR

from rps_evals import lmeval
from rps_evals.reports import readers
from rps_evals.cli import main as rps_main
from rps_evals.data import load_dataset
from rps_evals.execution import SandboxUnavailable
from rps_evals.prompt import build_prompt
from rps_evals.records import InputError
from rps_evals.scoring import LOWER_IS_BETTER, METRICS

ARC = TASKS_DIR / "arc_prog"
TEST_OUTPUT_UNITS = {name for name, unit in METRICS.items() if "test outputs" in unit}


def _yaml(name):
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(ARC / name, resolve_func=False)


def test_metric_list_is_every_core_metric_with_its_direction():
    metrics = {m["metric"]: m for m in _yaml("arc1_prog.yaml")["metric_list"]}
    assert set(METRICS) <= set(metrics)
    for name in METRICS:
        assert metrics[name]["higher_is_better"] is (name not in LOWER_IS_BETTER), name
        assert metrics[name]["aggregation"].endswith("utils.pooled_rate"), name
    assert set(metrics) - set(METRICS) == {"arc_prize_score", "oracle_task_solves", "oracle_test_output_exact",
                                           "task_solves_train_vote", "test_output_exact_train_vote",
                                           "task_solves_train_verified_first", "test_output_exact_train_verified_first",
                                           lmeval.UNKNOWN_STOP_KEY, lmeval.RECORDS_KEY}


def test_tasks_and_group_are_what_the_issue_names():
    for task, dataset in lmeval.TASK_DATASETS.items():
        cfg = _yaml(f"{task}.yaml")
        assert (cfg["task"], cfg["metadata"]["arc_dataset"]) == (task, dataset)
        assert cfg["repeats"] == 2 and cfg["unsafe_code"] is True and cfg["num_fewshot"] == 0
        assert cfg["filter_list"][0]["filter"][0]["function"].endswith("utils.KeepAllAttempts")
        assert cfg["generation_kwargs"]["max_gen_toks"] >= 15000 and cfg["generation_kwargs"]["until"] == []
    group = _yaml("arc_prog.yaml")
    assert group["task"] == ["arc1_prog", "arc2_prog"]
    listed = {m["metric"] for m in group["aggregate_metric_list"]}
    # a document-count-weighted mean pools exactly the per-task and per-attempt counts, not test outputs
    assert listed == (set(METRICS) - TEST_OUTPUT_UNITS) | {"arc_prize_score", lmeval.UNKNOWN_STOP_KEY}
    assert TEST_OUTPUT_UNITS == {"test_output_exact", "valid_output_attempts"}


def test_docs_are_one_per_arc_task_with_the_shared_prompt():
    docs = lmeval.load_docs("arc2:evaluation", pretrained="ignored", version=1.0)["test"]
    dataset = load_dataset("arc2:evaluation")
    assert [d["task_id"] for d in docs] == list(dataset.tasks)
    first = docs[0]
    assert lmeval.doc_to_text(first) == build_prompt(dataset.tasks[first["task_id"]])
    assert json.loads(lmeval.doc_to_target(first)) == dataset.tasks[first["task_id"]].test_outputs
    assert first["dataset_hash"] == dataset.file_hash
    off = lmeval.load_docs("arc1:training", program_synthesis="off")["test"][0]
    assert lmeval.doc_to_text(off) == build_prompt(load_dataset("arc1:training").tasks[off["task_id"]], "off")
    assert (first["prompt_version"], off["prompt_version"]) == ("arc-prog-v2", "arc-prog-v1-off")  # per mode
    with pytest.raises(ValueError):
        lmeval.load_docs("arc1:training", program_synthesis="sometimes")


def test_pooled_rate_sums_pairs_instead_of_averaging_rates():
    assert lmeval.pooled_rate([(1, 1), (0, 3)]) == 0.25  # a mean of rates would say 0.5
    assert lmeval.pooled_rate([]) == 0.0
    assert lmeval.count_records([[1, 2], [3]]) == 3


def test_keep_all_attempts_filter_keeps_every_repeat():
    assert lmeval.KeepAllAttempts().apply([("a", "b", "c")], [{}]) == [["a", "b", "c"]]


def test_backend_kind_and_tokenizer_come_from_the_model_args(monkeypatch):
    monkeypatch.delenv("RPS_SANDBOX", raising=False)
    hf = lmeval.ScoringContext.from_metadata({"pretrained": "some/model", "arc_dataset": "arc1:training"})
    assert (hf.api_backend, hf.tokenizer_name, hf.sandbox) == (False, "some/model", None)  # None: docker
    chat = lmeval.ScoringContext.from_metadata({"model": "rps", "base_url": "http://h/v1/chat/completions"})
    assert chat.api_backend and chat.tokenizer_name is None
    assert "no tokenizer is known" in chat.tokenizer()[1]
    assert lmeval.ScoringContext.from_metadata({"model": "rps", "rps_api_backend": "false"}).api_backend is False
    named = lmeval.ScoringContext.from_metadata({"pretrained": "a", "tokenizer": "b", "rps_tokenizer": "c"})
    assert named.tokenizer_name == "c"
    thinking = lmeval.ScoringContext.from_metadata({"pretrained": "a", "think_end_token": "</think>"})
    assert "think_end_token" in thinking.tokenizer()[1]
    monkeypatch.setenv("RPS_SANDBOX", "local")
    assert lmeval.ScoringContext.from_metadata({}).sandbox == "local"
    assert lmeval.ScoringContext.from_metadata({"rps_sandbox": "docker"}).sandbox == "docker"


def test_generation_limit_follows_lm_evals_precedence():
    ctx = lmeval.ScoringContext(default_max_gen_toks=300)
    assert ctx.max_new_tokens({"max_gen_toks": 100, "max_tokens": 50}) == 100
    assert ctx.max_new_tokens({"max_new_tokens": 70}) == 70
    assert ctx.max_new_tokens({"until": []}) == 300  # the model's own default
    assert lmeval.ScoringContext(api_backend=True).max_new_tokens({"max_gen_toks": 100, "max_tokens": 50}) == 50


def test_api_placeholder_is_an_error_only_from_an_api_backend(monkeypatch):
    monkeypatch.delenv("LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER", raising=False)
    api = lmeval.ScoringContext(api_backend=True).responses("t", ["", "text"], None)
    assert (api[0].completion, api[0].error) == (None, lmeval.API_ERROR_TEXT)
    assert (api[1].completion, api[1].error, api[1].stop_reason) == ("text", None, None)
    local = lmeval.ScoringContext().responses("t", [""], None)
    assert (local[0].completion, local[0].error) == ("", None)


def test_an_unusable_sandbox_fails_when_the_task_loads_before_any_generation():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"rps_sandbox": "nowhere"})
    with pytest.raises(SandboxUnavailable, match="unknown sandbox 'nowhere'"):
        manager.load(["arc1_prog"])


def test_tasks_path_helper_prints_the_include_path():
    proc = subprocess.run([sys.executable, "-m", "rps_evals.lmeval", "--tasks-path"],
                          capture_output=True, text=True, check=True)
    path = proc.stdout.strip()
    assert (lmeval.tasks_path() / "arc_prog" / "arc1_prog.yaml").is_file()
    assert path == str(lmeval.tasks_path())


def _fake_run(folder, date, tasks):
    """The shape lm-eval writes: results_<date>.json and one samples_<task>_<date>.jsonl per task."""
    folder.mkdir(parents=True, exist_ok=True)
    configs = {t: {"task": t, "repeats": 2, "metadata": {"arc_dataset": lmeval.TASK_DATASETS[t]}} for t in tasks}
    (folder / f"results_{date}.json").write_text(json.dumps({"results": {t: {} for t in tasks}, "configs": configs}))
    for t in tasks:
        (folder / f"samples_{t}_{date}.jsonl").write_text("")


def test_report_refuses_what_is_not_one_arc_task(tmp_path):
    date = "2025-01-01T00-00-00.000001"
    _fake_run(tmp_path / "group" / "model", date, ["arc1_prog", "arc2_prog"])
    with pytest.raises(InputError, match="several ARC tasks.*samples_arc1_prog_"):
        readers.read_lmeval_output(tmp_path / "group")
    (tmp_path / "nosamples").mkdir()
    (tmp_path / "nosamples" / f"results_{date}.json").write_text(json.dumps({"results": {}, "configs": {}}))
    with pytest.raises(InputError, match="--log_samples"):
        readers.read_lmeval_output(tmp_path / "nosamples")
    _fake_run(tmp_path / "two", date, ["arc1_prog"])
    _fake_run(tmp_path / "two", "2025-01-02T00-00-00.000001", ["arc1_prog"])
    with pytest.raises(InputError, match="holds 2 lm-eval runs"):
        readers.read_lmeval_output(tmp_path / "two")
    assert readers.is_lmeval_output(tmp_path / "two") and not readers.is_lmeval_output(tmp_path / "nothing")
    assert rps_main(["report", str(tmp_path / "group"), "--out", str(tmp_path / "run")]) == 2
