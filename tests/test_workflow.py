"""`.github/workflows/arc-regression.yml` run step by step on CPU (docs/ci.md).

The steps come from the YAML itself (tests/workflow_support.py runs them as GitHub would). Only two
things are not what a runner does: the Install step (checked, then skipped: this interpreter
already has the package, whose checkout is the workspace on PYTHONPATH), and `vllm` on PATH, which
is tests/fake_openai_server.py: it records the serve command it was started with (checked against
the serving recipe) and answers the pinned subset's prompts from recorded responses. Everything
else is real: Inspect's `openai-api` provider, the `rps_evals/arc2` task, the Docker sandbox,
`rps-evals report` and `rps-evals gate`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")
pytest.importorskip("openai")

from docker_support import require_image  # noqa: E402
from fake_openai_server import FakeModelServer, draw_samples  # noqa: E402
from workflow_support import JobResult, load_workflow, run_job, step_script  # noqa: E402

from rps_evals.data import load_dataset  # noqa: E402
from rps_evals.serving import vllm_serve_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "arc-regression.yml"
SUBSET = ROOT / "benchmarks" / "regression" / "arc2_eval_subset.txt"
JOB = "regression"
SECRET = "s3cret-key-for-the-test"
ARTIFACT = "arc-regression-4242"  # the runner's run id is 4242
SEEDS = 2  # the workflow's default is 3; 2 keeps this test to about a minute per workflow run


def subset_ids() -> list[str]:
    return [line.strip() for line in SUBSET.read_text().splitlines() if line.strip() and not line.startswith("#")]


# -- recorded responses ---------------------------------------------------------------------------------

def _answer(kind: str, task) -> str:
    """One recorded answer of a given kind to `task`."""
    if kind == "general":  # runs on every input, wrong (copies the grid)
        return "Reasoning:\ncopy the grid\n\nPython program:\n```python\ndef transform(grid):\n    return [row[:] for row in grid]\n```\n"
    if kind == "literal":  # runs and is right, by looking the answer up
        table = {json.dumps(i): o for i, o in zip(task.test_inputs, task.test_outputs)}
        return ("Reasoning:\nlook it up\n\nPython program:\n```python\nimport json\n"
                f"ANSWERS = {json.dumps(table)}\n\ndef transform(grid):\n    return ANSWERS[json.dumps(grid)]\n```\n")
    if kind == "crash":  # the program fails on every input, no JSON to fall back on
        return "Reasoning:\nindex it\n\nPython program:\n```python\ndef transform(grid):\n    return grid[100]\n```\n"
    if kind == "json":  # no program, the right grids as JSON
        return "Reasoning:\nby eye\n\nPredicted test outputs:\n" + json.dumps(task.test_outputs) + "\n"
    raise ValueError(kind)


BASELINE_POOL = lambda i: ["general", "literal" if i % 3 == 0 else "general", "crash" if i % 2 == 0 else "json", "general"]  # noqa: E731
REGRESSED_POOL = lambda i: ["general", "crash", "crash", "crash"]  # noqa: E731
EXECUTED = {"general", "literal"}


def write_responses(path: Path, pool) -> Path:
    tasks = load_dataset("arc2:evaluation").tasks
    with open(path, "w", encoding="utf-8") as out:
        for i, task_id in enumerate(subset_ids()):
            for attempt, kind in enumerate(pool(i), 1):
                out.write(json.dumps({"task_id": task_id, "attempt": attempt, "kind": kind,
                                      "completion": _answer(kind, tasks[task_id]), "stop_reason": "stop"}) + "\n")
    return path


def expected_executed(responses: Path, seed: int) -> int:
    """How many of the run's 2 x 30 attempts the fake server answers with a program that runs."""
    from fake_openai_server import read_samples

    samples = read_samples(responses)
    return sum(s["kind"] in EXECUTED for t in subset_ids() for s in draw_samples(samples[t], t, seed, 2))


# -- a runner on this machine ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _install_is_the_package(script: str) -> str:
    """The Install step installs this checkout with pip (serving extras only where it serves); here
    the package is already importable from the workspace, so nothing runs."""
    assert 'python -m pip install -q -e ".[$extras]"' in script and "extras=inspect,serve" in script
    return "true\n"


class Runner:
    """A fresh checkout per workflow run (as actions/checkout gives), and the runner's PATH."""

    def __init__(self, root: Path, responses: Path):
        self.root, self.responses = root, responses
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            (self.bin / name).unlink(missing_ok=True)
            (self.bin / name).symlink_to(sys.executable)
        vllm = self.bin / "vllm"
        vllm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fake_openai_server.py"}" "$@"\n')
        vllm.chmod(0o755)
        self.count = 0

    def run(self, inputs: dict, *, baseline: Path | None = None, responses: Path | None = None) -> tuple[JobResult, Path, dict]:
        self.count += 1
        workspace = self.root / f"checkout-{self.count}"
        shutil.copytree(ROOT, workspace, ignore=shutil.ignore_patterns(
            ".git", "runs", "logs", "__pycache__", ".venv", "*.egg-info", ".pytest_cache"))
        if baseline is not None:  # committed as the docs say
            shutil.copytree(baseline, workspace / "benchmarks" / "regression" / "baseline")
        port = _free_port()
        argv_file = self.root / f"vllm-argv-{self.count}.json"
        env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", str(self.root)),
            "PYTHONPATH": str(workspace), "HF_HUB_OFFLINE": "1",
            "FAKE_VLLM_ARGV": str(argv_file), "FAKE_VLLM_DATASET": "arc2:evaluation",
            "FAKE_VLLM_RESPONSES": str(responses or self.responses),
            "FAKE_VLLM_REQUESTS": str(self.root / f"vllm-requests-{self.count}.jsonl"),
        }
        for name in ("DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "RPS_EVALS_IMAGE"):
            if name in os.environ:
                env[name] = os.environ[name]
        result = run_job(load_workflow(WORKFLOW), JOB, workspace, inputs=inputs,
                         secrets={"ARC_REGRESSION_API_KEY": SECRET}, runner_env=env,
                         job_env_override={"PORT": str(port)}, replace={"Install": _install_is_the_package})
        info = {"port": port, "argv": json.loads(argv_file.read_text()) if argv_file.exists() else None,
                "requests": self.root / f"vllm-requests-{self.count}.jsonl"}
        return result, workspace, info


def outcomes(result: JobResult) -> dict[str, int | None]:
    """Each step's exit code, None for a step that did not run."""
    return {s.name: (s.returncode if s.ran else None) for s in result.steps}


def show(result: JobResult) -> str:
    return "\n".join(f"--- {s.name}: {s.returncode if s.ran else 'skipped'}\n{s.output[-3000:]}" for s in result.steps)


def assert_no_secret(workspace: Path, files: list[str]) -> None:
    """The API key is passed by name: it is in no uploaded file (nor inside the .eval zips)."""
    for name in files:
        path = workspace / name
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    assert SECRET.encode() not in archive.read(member), f"{name}:{member}"
        else:
            assert SECRET.encode() not in path.read_bytes(), name


STEPS = ["Run actions/checkout@v4", "Install", "Check inputs", "Sandbox image", "Serve the candidate adapter",
         "Eval the pinned subset, once per seed", "Gate against the baseline", "Stop vLLM", "Keep logs and the runs"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    require_image()
    for tool in ("curl", "setsid"):  # the serve step polls the server with curl and starts it with setsid
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the workflow's serve step needs it)")
    root = tmp_path_factory.mktemp("workflow")
    return Runner(root, write_responses(root / "baseline-model.jsonl", BASELINE_POOL))


@pytest.fixture(scope="module")
def adapter(runner) -> Path:
    directory = runner.root / "adapters" / "candidate"
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text('{"r": 16}')
    return directory


@pytest.fixture(scope="module")
def baseline(runner, adapter) -> tuple[JobResult, Path, dict]:
    """The first baseline: the workflow with update_baseline, serving the adapter."""
    return runner.run({"adapter": str(adapter), "seeds": str(SEEDS), "update_baseline": True})


@pytest.mark.slow
@pytest.mark.docker
def test_update_baseline_serves_the_adapter_and_keeps_runs_with_their_provenance(runner, adapter, baseline):
    result, workspace, info = baseline
    assert outcomes(result) == {**dict.fromkeys(STEPS, 0), "Gate against the baseline": None}, show(result)
    assert result.runs_on == ["self-hosted", "linux", "gpu"]
    # the serve step's command is the serving recipe's, with the key by reference
    assert info["argv"] == vllm_serve_args("Qwen/Qwen3-8B", {"candidate": str(adapter)}, port=info["port"],
                                           api_key=SECRET)
    assert "--api-key $VLLM_API_KEY" in result.step("Serve the candidate adapter").output
    assert not _port_open(info["port"])  # "Stop vLLM" stopped the server
    # one eval per seed, each with the recipe's sampling settings and its own seed
    requests = [json.loads(line) for line in info["requests"].read_text().splitlines()]
    assert sorted(r["seed"] for r in requests) == sorted([1] * 30 + [2] * 30)
    assert {(r["model"], r["n"], r["temperature"], r["top_p"], r["min_p"], r["status"]) for r in requests} == \
        {("candidate", 2, 0.7, 0.8, 0.0, 200)}
    files = result.artifacts[ARTIFACT]
    for seed in (1, 2):
        assert {f"runs/candidate/seed-{seed}/{name}" for name in ("results.json", "attempts.jsonl",
                                                                  "submission.json")} <= set(files)
        (log,) = [f for f in files if f.startswith(f"logs/arc-regression/seed-{seed}/") and f.endswith(".eval")]
        res = json.loads((workspace / f"runs/candidate/seed-{seed}/results.json").read_text())
        executed = res["metrics"]["attempts_from_executed_programs"]
        assert (executed["n"], executed["of"]) == (expected_executed(runner.responses, seed), 60)
        provenance = res["provenance"]
        assert provenance["dataset"] == "arc2:evaluation" and provenance["k"] == 2
        assert provenance["dataset_hash"] == load_dataset("arc2:evaluation").file_hash
        assert provenance["prompt_version"] == "arc-prog-v2" and provenance["prompt_hash"]
        assert provenance["model"] == "openai-api/vllm/candidate"
        gen = provenance["generation"]
        assert (gen["temperature"], gen["top_p"], gen["seed"], gen["num_choices"]) == (0.7, 0.8, seed, 2)
    assert {"runs/candidate/workflow.json", "vllm.log"} <= set(files)
    made = json.loads((workspace / "runs/candidate/workflow.json").read_text())
    assert made["inputs"] == {"ADAPTER": str(adapter), "BASE_MODEL": "Qwen/Qwen3-8B", "BASE_URL": "",
                              "MODEL": "", "THINKING": "off", "SEEDS": "2"}
    assert (made["served_model"], made["base_url"], made["run_id"]) == (
        "candidate", f"http://localhost:{info['port']}/v1", "4242")
    assert_no_secret(workspace, files)


def _committed_baseline(baseline_run) -> Path:
    """The baseline as the docs say to keep it: the uploaded runs/candidate, committed."""
    _, workspace, _ = baseline_run
    return workspace / "runs" / "candidate"


@pytest.mark.slow
@pytest.mark.docker
def test_gpu_free_mode_passes_the_same_model_served_elsewhere(runner, baseline):
    """An endpoint that already serves the candidate: no GPU label, no vLLM; the same model (its
    answers drawn in another order: other sampling noise) passes the gate."""
    rotated = write_responses(runner.root / "same-model.jsonl", lambda i: BASELINE_POOL(i)[1:] + BASELINE_POOL(i)[:1])
    requests = runner.root / "endpoint-requests.jsonl"
    server = FakeModelServer("arc2:evaluation", rotated, ["team/candidate-v2"], SECRET, request_log=requests).start()
    try:
        result, workspace, info = runner.run({"base_url": server.base_url, "model": "team/candidate-v2",
                                              "seeds": str(SEEDS)}, baseline=_committed_baseline(baseline))
    finally:
        server.close()
    assert outcomes(result) == {**dict.fromkeys(STEPS, 0), "Serve the candidate adapter": None,
                                "Stop vLLM": None}, show(result)
    assert result.runs_on == ["self-hosted", "linux"] and info["argv"] is None  # nothing started vllm
    gate = result.step("Gate against the baseline").output
    assert "gate: PASS" in gate.splitlines() and "B - A" in gate, gate  # the verdict, then compare's intervals
    seen = [json.loads(line) for line in requests.read_text().splitlines()]
    assert len(seen) == 60 and {(r["model"], r["status"]) for r in seen} == {("team/candidate-v2", 200)}
    files = result.artifacts[ARTIFACT]
    assert "vllm.log" not in files and "runs/candidate/seed-2/results.json" in files
    made = json.loads((workspace / "runs/candidate/workflow.json").read_text())
    assert (made["served_model"], made["base_url"]) == ("team/candidate-v2", server.base_url)
    assert_no_secret(workspace, files)


@pytest.mark.slow
@pytest.mark.docker
def test_a_regressing_candidate_fails_the_gate_and_its_runs_are_still_uploaded(runner, adapter, baseline):
    regressed = write_responses(runner.root / "regressed-model.jsonl", REGRESSED_POOL)
    result, workspace, info = runner.run({"adapter": str(adapter), "seeds": str(SEEDS)},
                                         baseline=_committed_baseline(baseline), responses=regressed)
    assert outcomes(result) == {**dict.fromkeys(STEPS, 0), "Gate against the baseline": 1}, show(result)
    gate = result.step("Gate against the baseline").output
    assert "gate: FAIL (candidate regressed beyond the allowed drop)" in gate.splitlines(), gate
    failing = {line.split()[0] for line in gate.splitlines() if line.endswith("FAIL")}
    assert "attempts_from_executed_programs" in failing
    for seed in (1, 2):
        res = json.loads((workspace / f"runs/candidate/seed-{seed}/results.json").read_text())
        executed = res["metrics"]["attempts_from_executed_programs"]
        assert (executed["n"], executed["of"]) == (expected_executed(regressed, seed), 60)
    assert {"runs/candidate/seed-1/results.json", "runs/candidate/seed-2/attempts.jsonl", "vllm.log"} <= \
        set(result.artifacts[ARTIFACT])
    assert not _port_open(info["port"])


@pytest.mark.slow
@pytest.mark.docker
def test_a_candidate_sampled_otherwise_is_refused_naming_the_settings(runner, adapter, baseline):
    """thinking=on samples at another temperature and top_p than the baseline (thinking off)."""
    result, _, _ = runner.run({"adapter": str(adapter), "seeds": str(SEEDS), "thinking": "on"},
                              baseline=_committed_baseline(baseline))
    assert outcomes(result) == {**dict.fromkeys(STEPS, 0), "Gate against the baseline": 2}, show(result)
    gate = result.step("Gate against the baseline").output
    baseline_run = "benchmarks/regression/baseline/seed-1"
    assert (f"temperature: baseline {baseline_run} 0.7, candidate runs/candidate/seed-1 0.6; "
            f"top_p: baseline {baseline_run} 0.8, candidate runs/candidate/seed-1 0.95") in gate, gate


# -- inputs, the public CLI, and the gate under sampling noise (no Docker, seconds) ---------------------

def _quick(tmp_path, inputs, files=()) -> JobResult:
    """The workflow up to its input check (no image, no model): what a mistyped dispatch gets."""
    workspace = tmp_path / "checkout"
    workspace.mkdir()
    (workspace / "benchmarks" / "regression").mkdir(parents=True)
    for name in files:
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text("{}")
    return run_job(load_workflow(WORKFLOW), JOB, workspace, inputs=inputs, runner_env={"PATH": os.environ["PATH"]},
                   replace={"Install": _install_is_the_package})


@pytest.mark.parametrize("inputs, files, message", [
    ({"seeds": "1", "update_baseline": True}, ["a/adapter_config.json"],
     "seeds must be a number from 2 to 99 (the gate tells a regression from sampling noise by the spread between seeds), got 1"),
    ({"seeds": "x3", "update_baseline": True}, ["a/adapter_config.json"], "seeds must be a number from 2 to 99"),
    ({}, [], "give adapter (serve mode) or base_url and model (GPU-free mode)"),
    ({"adapter": "nowhere"}, [], "nowhere is not a LoRA adapter directory (no adapter_config.json)"),
    ({"base_url": "http://10.0.0.5:8000/v1"}, [], "GPU-free mode needs model, the candidate's name at http://10.0.0.5:8000/v1"),
    ({"base_url": "10.0.0.5:8000", "model": "m"}, [], "base_url must start with http:// or https://, got 10.0.0.5:8000"),
    ({"base_url": "https://h/v1", "model": "m", "thinking": "maybe"}, [], "thinking must be on or off, got maybe"),
    ({"base_url": "https://h/v1", "model": "m", "seeds": "2"}, ["benchmarks/regression/baseline/seed-1/results.json"],
     "no baseline run at benchmarks/regression/baseline/seed-2 (seeds=2): run this workflow once with update_baseline"),
])
def test_bad_inputs_stop_the_job_at_the_check_with_exit_2(tmp_path, inputs, files, message):
    if "adapter" not in inputs and files and files[0].startswith("a/"):
        inputs = {**inputs, "adapter": str(tmp_path / "checkout" / "a")}
    result = _quick(tmp_path, inputs, files)
    check = result.step("Check inputs")
    assert check.returncode == 2 and f"::error::{message}" in check.output, check.output
    ran = [s.name for s in result.steps if s.ran]
    serve = "base_url" not in inputs  # "Stop vLLM" runs always() in serve mode, finding nothing to stop
    assert ran == ["Run actions/checkout@v4", "Install", "Check inputs"] + ["Stop vLLM"] * serve + ["Keep logs and the runs"]
    assert result.artifacts[ARTIFACT] == []


def test_the_workflow_uses_only_the_public_cli_and_secrets_by_name():
    workflow = load_workflow(WORKFLOW)
    scripts = "\n".join(step.get("run", "") for step in workflow["jobs"][JOB]["steps"])
    assert "import rps_evals" not in scripts and "from rps_evals" not in scripts and "python -c" not in scripts
    commands = set(re.findall(r"rps-evals [a-z]+|python3? -m [\w.]+", scripts))
    assert commands == {"rps-evals sandbox", "rps-evals gate", "rps-evals report", "rps-evals compare",
                        "python -m rps_evals.serving", "python3 -m venv", "python -m pip"}
    text = WORKFLOW.read_text()
    assert text.count("secrets.") == 1 and "${{ secrets.ARC_REGRESSION_API_KEY" in text


def test_the_gate_does_not_flap_on_an_identical_candidate_under_sampling_noise(tmp_path):
    """20 seeded repeats of one simulated model on both sides (the workflow's default seeds a side,
    its own gate command, run by its own step script): no failure. A real regression fails most."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("gate_noise", ROOT / "benchmarks" / "regression" / "gate_noise.py")
    gate_noise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate_noise)
    workflow = load_workflow(WORKFLOW)
    seeds = int(workflow["on"]["workflow_dispatch"]["inputs"]["seeds"]["default"])
    assert seeds == 3
    # the argv the gate step gives rps-evals (a stand-in on PATH records it)
    script, env = step_script(workflow, JOB, "Gate against the baseline", tmp_path)
    shim = tmp_path / "bin" / "rps-evals"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\n[ "$1" = gate ] && printf "%s\\n" "$@" > "$ARGV_OUT"\nexit 0\n')
    shim.chmod(0o755)
    argv_file = tmp_path / "argv.txt"
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}", "ARGV_OUT": str(argv_file)})
    assert proc.returncode == 0, proc.stderr
    argv = argv_file.read_text().splitlines()
    passes = lambda d: ",".join(f"{d}/seed-{s}" for s in range(1, seeds + 1))  # noqa: E731
    assert argv[:5] == ["gate", "--baseline", passes("benchmarks/regression/baseline"), "--candidate",
                        passes("runs/candidate")]
    assert argv[5:] == gate_noise.workflow_gate_flags()
    dataset = gate_noise.subset()
    profile = gate_noise.model_profile(len(dataset.tasks))
    baseline, candidate = tmp_path / "benchmarks" / "regression" / "baseline", tmp_path / "runs" / "candidate"
    here = os.getcwd()
    os.chdir(tmp_path)  # the step's relative paths
    try:
        same = [gate_noise.gate_once(argv, baseline, candidate, dataset, profile, np.random.default_rng(repeat),
                                     seeds) for repeat in range(20)]
        regressed = [gate_noise.gate_once(argv, baseline, candidate, dataset, profile, np.random.default_rng(repeat),
                                          seeds, drop=0.5)[0] for repeat in range(100, 110)]
    finally:
        os.chdir(here)
    assert [code for code, _ in same] == [0] * 20, [out for code, out in same if code][:1]
    assert "gate: PASS" in same[0][1]
    assert sum(regressed) >= 8, regressed  # about 33 points fewer programs that run
