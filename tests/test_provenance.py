"""Provenance: what a result records about how it was measured (docs/metrics.md, "Provenance")."""

from __future__ import annotations

import json
import subprocess
from importlib.resources import files

import pytest

from rps_evals import prompt
from rps_evals.cli import main
from rps_evals.data import load_dataset
from rps_evals.execution import image
from rps_evals.prompt import ProgramSynthesis, build_prompt, prompt_hash, prompt_version
from rps_evals.provenance import build_provenance, percentile, sandbox_info, usage_summary
from rps_evals.records import read_run, write_run
from rps_evals.scoring import AttemptRecord

# Each prompt version's template hash. A change to a mode's text changes its hash: then give that
# mode a new version (PROMPT_VERSIONS in rps_evals/prompt.py) and add its hash here. Never edit a
# hash in place: results of the old text keep its version.
PINNED_PROMPT_HASHES = {
    "arc-prog-v1": "1966d4a1cd653db1e3b87858ae887593f97a1976c8eebc0689a69bf61077a115",
    "arc-prog-v1-required": "5d4876e3779e72742b58ab0179b6dc7a994d9b689b39f9db50a6736a8484ed8a",
    "arc-prog-v1-off": "d09fc0fd20bfac6d7b534fec4bce0cb79fae6707b2413b10ebf2e45917fa8036",
    "arc-prog-v2": "44ce2d29da65aba5147a62df6761e6e9b252d66cd0130fb7490dd55ac08905da",
    "arc-prog-v2-required": "df6e18ec994949bb725d71ba2ce176389d3dbc8ff19b7125802141e39042b2a5",
}


def test_the_prompt_names_the_numpy_and_scipy_the_sandbox_pins():
    """A new pin in sandbox/requirements.txt must come with a prompt that names it (and so a new
    prompt version): the model is told which numpy its program gets."""
    from rps_evals.execution.local import image_pins

    pins = {name: ".".join(version.split(".")[:2]) for name, version in image_pins().items()}
    assert f"numpy {pins['numpy']} and scipy {pins['scipy']} is available" in prompt._LIBRARIES
    task = load_dataset("arc1:training").tasks["25ff71a9"]
    for mode in ("allowed", "required"):
        assert prompt._LIBRARIES in build_prompt(task, mode)


@pytest.mark.parametrize("mode", list(ProgramSynthesis))
def test_each_modes_prompt_hash_is_pinned_to_its_version(mode):
    version = prompt_version(mode)
    assert version in PINNED_PROMPT_HASHES, f"{mode.value}: version {version} has no pinned hash"
    assert prompt_hash(mode) == PINNED_PROMPT_HASHES[version], (
        f"the {mode.value} prompt text changed but its version {version} did not: bump it")


def test_a_text_change_without_a_version_bump_is_caught(monkeypatch):
    monkeypatch.setitem(prompt._INSTRUCTIONS, ProgramSynthesis.OFF, "Do not write code: just answer.")
    assert prompt_version("off") == "arc-prog-v1-off"
    assert prompt_hash("off") != PINNED_PROMPT_HASHES["arc-prog-v1-off"]
    monkeypatch.setattr(prompt, "_EXAMPLE", prompt._EXAMPLE.replace("Example", "Demo"))
    assert prompt_hash("allowed") != PINNED_PROMPT_HASHES["arc-prog-v2"]  # the example block counts too


def test_the_modes_have_distinct_texts_and_versions():
    task = load_dataset("arc1:training").tasks["25ff71a9"]
    texts = {mode: build_prompt(task, mode) for mode in ProgramSynthesis}
    assert len(set(texts.values())) == 3
    assert len({prompt_version(m) for m in ProgramSynthesis}) == 3
    assert len({prompt_hash(m) for m in ProgramSynthesis}) == 3
    assert prompt.PROMPT_VERSION == prompt_version("allowed")


def test_provenance_block_has_every_field_and_nulls_for_the_unknown():
    dataset = load_dataset("arc2:evaluation")
    sandbox = {"backend": "local", "image": None, "python": "3.11.7", "numpy": "2.4.6"}
    block = build_provenance(dataset, 3, "off", 5, sandbox, model="vllm/rps",
                             generation={"temperature": 0.6})
    assert list(block) == ["rps_evals_version", "dataset", "dataset_hash", "k", "prompt_version", "prompt_hash",
                           "program_synthesis", "exec_timeout", "exec_wall_limit", "sandbox", "model", "generation"]
    assert (block["dataset"], block["k"], block["exec_timeout"]) == ("arc2:evaluation", 3, 5.0)
    assert block["exec_wall_limit"] == 50.0  # 5 CPU seconds per call, stopped at 10 x that of wall-clock time
    assert (block["prompt_version"], block["program_synthesis"]) == ("arc-prog-v1-off", "off")
    assert block["prompt_hash"] == PINNED_PROMPT_HASHES["arc-prog-v1-off"]
    unknown = build_provenance(dataset, 2, None, 2.0, sandbox)
    assert (unknown["prompt_version"], unknown["prompt_hash"], unknown["program_synthesis"]) == (None, None, None)
    assert (unknown["model"], unknown["generation"]) == (None, None)


def _record(attempt, output_tokens=None, reasoning_tokens=None, missing=False):
    return AttemptRecord("t", attempt, "invalid", "no_program", [None], [None], [False], False,
                         output_tokens=output_tokens, reasoning_tokens=reasoning_tokens, missing=missing)


def test_usage_summary_hand_computed():
    records = [_record(1, 10, 4), _record(2, 40), _record(3, 20, 6), _record(4, 30), _record(5, missing=True)]
    usage = usage_summary(records, wall_time_s=12.3456)
    # known counts 10, 20, 30, 40: mean 25; nearest rank p50 = 2nd = 20, p90 = ceil(3.6) = 4th = 40
    assert usage["output_tokens_per_attempt"] == {"attempts": 4, "mean": 25.0, "p50": 20, "p90": 40, "max": 40}
    assert usage["reasoning_tokens_per_attempt"] == {"attempts": 2, "mean": 5.0, "p50": 4, "p90": 6, "max": 6}
    assert (usage["output_tokens"], usage["reasoning_tokens"], usage["total_tokens"]) == (100, 10, None)
    assert usage["wall_time_s"] == 12.346
    assert usage_summary([_record(1)])["output_tokens_per_attempt"] is None
    partial = usage_summary(records + [_record(6)])  # generated, count unknown: no total, same distribution
    assert partial["output_tokens"] is None and partial["output_tokens_per_attempt"]["attempts"] == 4
    assert usage_summary(records, output_tokens=500, total_tokens=900)["output_tokens"] == 500
    assert percentile([7], 0.9) == 7 and percentile([3, 1, 2], 0.5) == 2


def test_local_sandbox_versions_are_this_interpreters():
    import platform
    from importlib import metadata

    info = sandbox_info("local")
    assert info == {"backend": "local", "image": None, "python": platform.python_version(),
                    "numpy": metadata.version("numpy"), "scipy": metadata.version("scipy")}
    assert sandbox_info("k8s") == {"backend": "k8s", "image": None, "python": None, "numpy": None, "scipy": None}


def test_score_writes_provenance_and_old_runs_still_load(tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"task_id": "25ff71a9", "attempt": 1, "completion": "no program",
                                     "output_tokens": 7}) + "\n")
    code = main(["score", "--dataset", "arc1:training", "--responses", str(responses), "--out",
                 str(tmp_path / "run"), "--sandbox", "local", "--timeout", "3", "--task-ids", "25ff71a9"])
    assert code == 0
    result, records = read_run(tmp_path / "run")
    block = result["provenance"]
    assert (block["dataset"], block["k"], block["exec_timeout"], block["program_synthesis"]) == \
        ("arc1:training", 2, 3.0, None)
    assert block["sandbox"]["backend"] == "local" and block["sandbox"]["numpy"]
    assert result["usage"]["output_tokens_per_attempt"]["max"] == 7 and result["usage"]["wall_time_s"] > 0
    assert [r.output_tokens for r in records] == [7, None]

    dataset = load_dataset("arc1:training").select(["25ff71a9"])
    write_run(tmp_path / "old", dataset, records, 2)  # no provenance given: none written (old format)
    old = json.loads((tmp_path / "old" / "results.json").read_text())
    assert "provenance" not in old and "usage" not in old
    for line in (tmp_path / "old" / "attempts.jsonl").read_text().splitlines():
        data = json.loads(line)
        for key in ("output_tokens", "reasoning_tokens"):
            data.pop(key)
        assert AttemptRecord.from_dict(data).output_tokens is None  # records of older runs load


def test_responses_file_token_counts_are_checked(tmp_path, capsys):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"task_id": "25ff71a9", "attempt": 1, "completion": "x",
                                     "output_tokens": -1}) + "\n")
    code = main(["score", "--dataset", "arc1:training", "--responses", str(responses), "--out",
                 str(tmp_path / "run"), "--sandbox", "local", "--task-ids", "25ff71a9"])
    assert code == 2 and "r.jsonl:1: output_tokens must be a non-negative integer" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- the sandbox image: its tag covers the base; its versions are read from it ---------------------

def test_image_tag_covers_the_base_image():
    assert image.SANDBOX_IMAGE == image.image_tag(image.DEFAULT_BASE_IMAGE)
    assert image.DEFAULT_BASE_IMAGE == "python:3.11-slim-bookworm"  # the Dockerfile's ARG default
    assert image.OFFLINE_SANDBOX_IMAGE != image.SANDBOX_IMAGE  # another base (Debian's python3 3.11.2)
    assert image.image_tag("python:3.12-slim") != image.SANDBOX_IMAGE


def test_offline_build_script_computes_the_same_tag():
    """Two implementations of one rule (bash and Python) must agree."""
    sandbox = files("rps_evals.sandbox")
    script = (sandbox / "build_offline.sh").read_text()
    (line,) = [s for s in script.splitlines() if s.startswith("hash=")]
    done = subprocess.run(["bash", "-c", f'here="$0"; base="$1"; {line}; echo "$hash"', str(sandbox),
                           image.OFFLINE_BASE_IMAGE], capture_output=True, text=True, check=True)
    assert f"rps-evals-sandbox:{done.stdout.strip()}" == image.OFFLINE_SANDBOX_IMAGE


@pytest.mark.docker
def test_docker_sandbox_versions_are_read_from_the_image(tmp_path, monkeypatch):
    from docker_support import require_image

    require_image()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(image, "_IDENTITIES", {})
    tag = image.sandbox_image()
    info = sandbox_info("docker")
    cached = json.loads((tmp_path / "rps-evals" / "image-versions.json").read_text())
    assert cached == {info["image"]["id"]: {"python": info["python"], "numpy": info["numpy"], "scipy": info["scipy"]}}
    assert info["backend"] == "docker" and info["image"]["tag"] == tag
    assert info["image"]["id"].startswith("sha256:")
    # asked another way, inside the image: its own metadata of numpy, not this machine's
    client = image.docker_client()
    out = client.containers.run(tag, ["python3", "-c", "import importlib.metadata as m, sys; "
                                      "print(m.version('numpy'), m.version('scipy'), '%d.%d.%d' % sys.version_info[:3])"],
                                remove=True, network_disabled=True).decode().split()
    assert [info["numpy"], info["scipy"], info["python"]] == out
    assert info["numpy"].startswith("2.")  # the pin of sandbox/requirements.txt, online and offline alike
