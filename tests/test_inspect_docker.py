"""The Inspect tasks in Docker: the default `docker` (the warm pool of `rps-evals score`, shared by
the eval's samples) and `inspect-docker` (Inspect's own docker sandbox on sandbox/compose.yaml, one
container per sample). Same responses, same numbers as `rps-evals score` (local runner)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402

from rps_evals.arc1 import arc1  # noqa: E402
from rps_evals.cli import main as rps_main  # noqa: E402
from rps_evals.inspect_eval.replay import demo_responses_path  # noqa: E402
from docker_support import require_image  # noqa: E402
from inspect_support import DEMO_IDS, assert_same_numbers, core_score, inspect_metrics, scores_of  # noqa: E402


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["docker", "inspect-docker"])
def test_demo_in_the_docker_sandbox_equals_core_score(tmp_path, sandbox):
    require_image()  # skips only when no Docker engine answers; builds a missing image
    core = core_score(demo_responses_path(), tmp_path / "core")
    task = arc1(split="training", task_ids=DEMO_IDS, sandbox=sandbox)
    (log,) = inspect_eval(task, model="rps/replay", log_dir=str(tmp_path / "logs"), display="none")
    if sandbox == "docker":  # no Inspect sandbox: the scorer runs programs in the shared pool
        assert log.eval.sandbox is None
    else:
        assert log.eval.sandbox is not None and log.eval.sandbox.type == "docker"
    assert_same_numbers(inspect_metrics(log), core)
    assert rps_main(["report", log.location, "--out", str(tmp_path / "run")]) == 0
    reported = json.loads((tmp_path / "run" / "results.json").read_text())
    assert scores_of(reported) == scores_of(core)
    from rps_evals.provenance import sandbox_info

    # the image the programs ran in, read the same way as `rps-evals score --sandbox docker` reads it
    assert reported["provenance"]["sandbox"] == {**sandbox_info("docker"), "backend": sandbox}
    # the loop was stopped by the runner's per-call limit inside the container
    (looping,) = [s for s in log.samples if s.id == "67a3c6ac"]
    first = looping.scores["arc_scorer"].metadata["attempts"][0]
    assert first["program_status"] == "timeout"


@pytest.mark.docker
def test_the_pool_is_shared_by_the_samples_and_closed_at_the_end(tmp_path):
    from rps_evals.execution import shared_executor

    require_image()
    task = arc1(split="training", task_ids=DEMO_IDS[:3])
    pool = shared_executor("docker", 2.0)
    seen = []
    original = pool.run

    def run(programs, progress=None):
        seen.append(tuple(pool.container_ids()))
        return original(programs, progress)

    pool.run = run
    (log,) = inspect_eval(task, model="rps/replay", log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success" and len(seen) == 3  # one call per sample, all on this pool
    assert pool._closed  # the run's end closed it; the next shared_executor call starts a new one
    assert shared_executor("docker", 2.0) is not pool


@pytest.mark.docker
def test_inspect_docker_containers_get_the_executors_limits():
    import subprocess

    from rps_evals.execution.docker import LIMITS
    from rps_evals.inspect_eval.sandbox import compose_file

    yaml = pytest.importorskip("yaml")
    done = subprocess.run(["docker", "compose", "-f", compose_file(), "config"], capture_output=True, text=True,
                          check=True)
    service = yaml.safe_load(done.stdout)["services"]["default"]
    assert int(service["mem_limit"]) == int(service["memswap_limit"]) == LIMITS.container_mb << 20
    assert int(service["pids_limit"]) == LIMITS.pids
    assert service["tmpfs"] == [
        f"/tmp:rw,nosuid,nodev,noexec,size={LIMITS.tmpfs_mb}m,nr_inodes={LIMITS.tmpfs_inodes},mode=1777",
        f"/dev/shm:rw,nosuid,nodev,noexec,size={LIMITS.shm_mb}m,nr_inodes={LIMITS.shm_inodes},mode=1777"]
