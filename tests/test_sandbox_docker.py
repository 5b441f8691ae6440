"""The Docker executor against a real engine: parity with the local runner, cleanup (close, exceptions,
SIGINT/SIGTERM/SIGKILL of the host process), restart of a killed container, hardening of the
containers, the Inspect path, and the messages when Docker is missing. Tests marked `docker` skip
only when no engine answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from importlib.resources import files
from pathlib import Path

import pytest

from docker_support import containers_labelled, require_engine, require_image
from rps_evals.data import load_dataset
from rps_evals.execution import Program, SandboxUnavailable, get_executor
from rps_evals.execution.docker import DockerExecutor
from rps_evals.execution.image import LABEL, sandbox_image
from rps_evals.execution.local import LocalExecutor
from sandbox_programs import catalogue, program_for

REPO = Path(__file__).resolve().parents[1]
SLEEPER = "import time\ndef transform(grid):\n    time.sleep(1e9)\n"


def parity_programs() -> list[Program]:
    """Non-hostile programs: the realistic catalogue plus the edge cases of the status rules."""
    programs = [program_for(task_id, source) for task_id, _, source in catalogue()]
    task = load_dataset("arc1:training").tasks["25ff71a9"]  # two test inputs
    tests, train = task.test_inputs, [pair[0] for pair in task.train]
    edge = [
        "def transform(grid):\n    return grid\n    )",  # syntax error
        "x = 1\n",  # no transform
        "import numpy as np\ndef transform(grid):\n    return np.array(grid, dtype=np.int64)\n",
        "def transform(grid):\n    return tuple(tuple(r) for r in grid)\n",
        "def transform(grid):\n    return [[float(c) for c in r] for r in grid]\n",
        "import numpy as np\ndef transform(grid):\n    return np.array(grid) > 0\n",
        "def transform(grid):\n    print('debug', grid)\n    return grid\n",
        f"def transform(grid):\n    if grid == {tests[1]!r}:\n        raise ValueError('second test')\n    return grid\n",
        f"def transform(grid):\n    if grid not in {tests!r}:\n        raise ValueError('train only')\n    return grid\n",
        "def transform(grid):\n    return {'not': 'a grid'}\n",
        "def transform(grid):\n    return None\n",
    ]
    return programs + [Program(source, tests, train) for source in edge]


@pytest.mark.docker
def test_docker_and_local_give_identical_executions():
    require_image()
    programs = parity_programs()
    with get_executor("docker", timeout=1.0) as docker_ex, LocalExecutor(timeout=1.0) as local_ex:
        assert isinstance(docker_ex, DockerExecutor)
        in_docker = docker_ex.run(programs)
        local = local_ex.run(programs)
    for program, a, b in zip(programs, in_docker, local):
        assert (a.status, a.test_outputs, a.train_outputs) == (b.status, b.test_outputs, b.train_outputs), program.source
        # Same message, up to library versions (the image's numpy may differ from the host's).
        assert a.error.strip().splitlines()[-1:] == b.error.strip().splitlines()[-1:], program.source
    statuses = {e.status for e in in_docker}
    assert statuses == {"ok", "error", "timeout"}


@pytest.mark.docker
def test_cli_score_gives_the_same_results_with_docker_and_local(tmp_path):
    require_image()
    from rps_evals.cli import main

    rows = []
    for task_id, kind, source in catalogue():
        attempt = 1 + sum(1 for r in rows if r["task_id"] == task_id)
        if attempt <= 2:
            rows.append({"task_id": task_id, "attempt": attempt, "stop_reason": "stop", "error": None,
                         "completion": f"Reasoning: {kind}\n\nPython program:\n```python\n{source}```\n"})
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_ids = sorted({r["task_id"] for r in rows})
    outputs = {}
    for sandbox in ("docker", "local"):
        out = tmp_path / sandbox
        assert main(["score", "--dataset", "arc1:training", "--responses", str(responses), "--out", str(out),
                     "--sandbox", sandbox, "--timeout", "1", "--task-ids", *task_ids]) == 0
        outputs[sandbox] = {name: (out / name).read_text() for name in ("submission.json",)}
        results = json.loads((out / "results.json").read_text())
        for what in ("usage", "provenance"):  # wall time, and which sandbox ran: the only differences allowed
            results.pop(what, None)
        outputs[sandbox]["results.json"] = results
        outputs[sandbox]["attempts"] = [{k: v for k, v in json.loads(line).items() if k != "error"}
                                        for line in (out / "attempts.jsonl").read_text().splitlines()]
    assert outputs["docker"] == outputs["local"]


@pytest.mark.docker
def test_containers_are_hardened():
    require_image()
    with DockerExecutor(workers=1) as executor:
        executor.start()
        [container_id] = executor.container_ids()
        attrs = require_engine().api.inspect_container(container_id)
        [result] = executor.run([Program("import os\ndef transform(grid):\n    return [[os.getuid(), os.getpid()]]\n",
                                         [[[0]]])])
    host, config = attrs["HostConfig"], attrs["Config"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    # the runner keeps only what it needs to start programs under their own uid and kill leftovers
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == ["KILL", "SETGID", "SETUID"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] > 0 and host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
    assert set(host["Tmpfs"]) == {"/tmp", "/dev/shm"}
    assert all("noexec" in options and "nr_inodes=" in options for options in host["Tmpfs"].values())
    assert host["Privileged"] is False and not host.get("Binds") and not attrs["Mounts"]
    assert config["Labels"][LABEL] == "1"
    uid, pid = result.test_outputs[0][0]
    command = config["Cmd"]
    assert uid >= 100_000 and int(command[command.index("--program-uid") + 1]) == uid  # a uid of its own
    assert config["User"] == "0:0"  # the runner only: programs never run as root
    assert pid != 1  # the program is not the runner, which is PID 1


@pytest.mark.docker
def test_no_container_left_after_close_or_an_exception():
    require_image()
    executor = DockerExecutor(workers=2)
    assert executor.run([Program("def transform(grid):\n    return grid\n", [[[1]]])])[0].status == "ok"
    assert len(containers_labelled(executor=executor.token)) == 2
    executor.close()
    assert containers_labelled(executor=executor.token) == []

    with pytest.raises(RuntimeError, match="boom"):
        with DockerExecutor(workers=1, timeout=5.0) as executor:
            executor.submit(Program(SLEEPER, [[[1]]]))
            time.sleep(0.3)
            raise RuntimeError("boom")
    assert containers_labelled(executor=executor.token) == []


HOLDER = textwrap.dedent("""
    import sys, time
    from rps_evals.execution import Program
    from rps_evals.execution.docker import DockerExecutor
    executor = DockerExecutor(workers=2, timeout=0.5)
    with executor:
        futures = [executor.submit(Program("import time\\ndef transform(g):\\n    time.sleep(1e9)\\n", [[[1]]]))
                   for _ in range(4)]
        print("running", flush=True)
        for future in futures:
            future.result()
        time.sleep(60)
""")


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_no_container_left_after_the_host_process_is_signalled(signum):
    require_image()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()
        assert len(containers_labelled(pid=str(proc.pid))) == 2
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    # SIGINT and SIGTERM: the executor removes its containers before the process ends. SIGKILL: the
    # attach stream closes, the runner sees EOF, ends after the programs it has (sleepers: each
    # stopped at the 5 s wall-clock backstop of its 0.5 s CPU limit) and the container removes itself.
    deadline = time.monotonic() + (20 if signum == signal.SIGKILL else 0)
    while containers_labelled(pid=str(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers_labelled(pid=str(proc.pid)) == []


@pytest.mark.docker
def test_a_killed_container_is_replaced_and_only_its_running_program_fails():
    require_image()
    slow = Program("import time\ndef transform(grid):\n    time.sleep(2)\n    return grid\n", [[[1]]])
    quick = [Program(f"def transform(grid):\n    return [[{i}]]\n", [[[0]]]) for i in range(6)]
    with DockerExecutor(workers=1, timeout=10.0, depth=3) as executor:
        executor.start()
        [before] = executor.container_ids()
        futures = [executor.submit(p) for p in [slow] + quick]
        time.sleep(0.7)  # the slow one is running, two quick ones wait in the runner, the rest here
        require_engine().api.kill(before)
        results = [f.result(timeout=60) for f in futures]
        [after] = executor.container_ids()
        again = executor.run(quick[:1])
    assert results[0].status == "error" and "container stopped" in results[0].error
    assert [(r.status, r.test_outputs) for r in results[1:]] == [("ok", [[[i]]]) for i in range(6)]
    assert after != before
    assert again[0].status == "ok"


@pytest.mark.docker
def test_when_no_container_can_start_again_the_rest_raise_instead_of_failing_as_programs():
    image = require_image()
    client = require_engine()
    doomed = f"rps-evals-sandbox:doomed-{os.getpid()}"
    client.images.get(image).tag(doomed)
    slow = Program("import time\ndef transform(grid):\n    time.sleep(2)\n    return grid\n", [[[1]]])
    quick = Program("def transform(grid):\n    return grid\n", [[[1]]])
    try:
        with DockerExecutor(workers=1, timeout=10.0, image=doomed) as executor:
            executor.start()
            futures = [executor.submit(p) for p in (slow, quick, quick, quick)]
            time.sleep(0.7)
            client.images.remove(doomed)  # untags only: the running container keeps its image
            client.api.kill(executor.container_ids()[0])
            assert futures[0].result(timeout=60).status == "error"
            for future in futures[1:]:
                with pytest.raises(SandboxUnavailable, match="could not restart"):
                    future.result(timeout=60)
            with pytest.raises(SandboxUnavailable):
                executor.submit(quick)
    finally:
        try:
            client.images.remove(doomed)
        except Exception:
            pass


@pytest.mark.docker
def test_leftovers_of_a_dead_process_are_removed():
    image = require_image()
    client = require_engine()
    import socket

    orphan = client.containers.run(image, ["sleep", "60"], detach=True, network_mode="none",
                                   labels={LABEL: "1", f"{LABEL}.pid": "999999999",
                                           f"{LABEL}.host": socket.gethostname()})
    try:
        from rps_evals.cli import main

        assert main(["sandbox", "clean"]) == 0  # (an executor starting elsewhere may get there first)
        assert containers_labelled(pid="999999999") == []
    finally:
        try:
            orphan.remove(force=True)
        except Exception:
            pass


@pytest.mark.docker
def test_missing_image_says_how_to_build_it():
    require_engine()
    with pytest.raises(SandboxUnavailable, match="sandbox build"):
        DockerExecutor(image="rps-evals-sandbox:no-such-tag")


@pytest.mark.docker
def test_inspect_docker_sandbox_runs_the_same_runner(tmp_path):
    require_image()
    pytest.importorskip("inspect_ai")
    script = textwrap.dedent("""
        import json, sys
        from inspect_ai import Task, eval as inspect_eval
        from inspect_ai.dataset import Sample
        from inspect_ai.scorer import Score, accuracy, scorer
        from inspect_ai.solver import solver
        from rps_evals.execution import Program
        from rps_evals.inspect_eval.sandbox import compose_file, run_in_inspect_sandbox

        PROGRAMS = [
            Program("import numpy as np\\ndef transform(g):\\n    return np.rot90(np.array(g), 2)\\n", [[[1, 2]]], [[[3, 4]]]),
            Program("import os\\ndef transform(g):\\n    os.kill(os.getppid(), 9)\\n", [[[1]]]),
            Program("def transform(g):\\n    while True:\\n        pass\\n", [[[1]]]),
            Program("import os, signal\\ndef transform(g):\\n    os.kill(-1, signal.SIGKILL)\\n", [[[1]]]),
            Program(None, [[[1]]]),
            Program("def transform(g):\\n    return [[os_error]]\\n", [[[1]]]),
            Program("def transform(g):\\n    return g\\n", [[[7]]]),
            Program("def transform(g):\\n    open('/tmp/leak', 'w').write('x')\\n    return g\\n", [[[8]]]),
            Program("import os\\ndef transform(g):\\n    return [[int(os.path.exists('/tmp/leak'))]]\\n", [[[9]]]),
        ]

        @solver
        def nothing():
            async def solve(state, generate):
                return state
            return solve

        @scorer(metrics=[accuracy()])
        def run_them():
            async def score(state, target):
                results = await run_in_inspect_sandbox(PROGRAMS, 1.0)
                return Score(value=1, explanation=json.dumps([[r.status, r.test_outputs, r.train_outputs]
                                                              for r in results]))
            return score

        task = Task(dataset=[Sample(input="x", target="y")], solver=nothing(), scorer=run_them(),
                    sandbox=("docker", compose_file()))
        [log] = inspect_eval(task, model="mockllm/model", display="none", log_dir=sys.argv[1])
        print(log.status, log.samples[0].error)
        print(log.samples[0].scores["run_them"].explanation)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    status, explanation = done.stdout.strip().splitlines()[-2:]
    assert status == "success None"
    assert json.loads(explanation) == [
        ["ok", [[[2, 1]]], [[[4, 3]]]],
        ["error", [None], []],  # killed its runner: only this one fails
        ["timeout", [None], []],
        ["error", [None], []],  # killed every process of its uid, runner included
        ["no_program", [None], []],
        ["error", [None], []],
        ["ok", [[[7]]], []],
        ["ok", [[[8]]], []],
        ["ok", [[[0]]], []],  # the file the previous program left is gone
    ]


# -- without an engine -------------------------------------------------------------------------

def test_unreachable_engine_says_how_to_start_one_or_choose_local(monkeypatch, tmp_path):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")
    with pytest.raises(SandboxUnavailable) as info:
        get_executor(None)
    message = str(info.value)
    assert "no Docker engine answers" in message and "no-engine-here.sock" in message
    assert "--sandbox local" in message and "UNSAFE" in message


def test_cli_reports_an_unreachable_engine(monkeypatch, tmp_path, capsys):
    pytest.importorskip("docker")
    from rps_evals.cli import main

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"task_id": "3c9b0459", "attempt": 1, "completion": "no code"}) + "\n")
    code = main(["score", "--dataset", "arc1:training", "--responses", str(responses), "--out", str(tmp_path / "o"),
                 "--attempts", "1", "--task-ids", "3c9b0459"])
    assert code == 2
    assert "--sandbox local" in capsys.readouterr().err


def test_missing_docker_sdk_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` now raises ImportError
    with pytest.raises(SandboxUnavailable, match=r"rps-evals\[docker\]"):
        get_executor("docker")


def test_sandbox_files_ship_with_the_package():
    """(The image tag's rule, shared by Python and build_offline.sh, is tested in test_provenance.py.)"""
    sandbox = files("rps_evals.sandbox")
    for name in ("runner/__main__.py", "runner/main.py", "Dockerfile", "requirements.txt", "compose.yaml", "build_offline.sh"):
        assert (sandbox / name).is_file(), name


def test_compose_file_is_hardened():
    yaml = pytest.importorskip("yaml")
    service = yaml.safe_load((files("rps_evals.sandbox") / "compose.yaml").read_text())["services"]["default"]
    assert service["x-local"] is True and service["init"] is True
    assert service["network_mode"] == "none" and service["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
    assert service["pids_limit"] and service["mem_limit"] and service["tmpfs"]  # values: compose_file()
    assert not service["user"].startswith("0") and "rps-evals-sandbox" in service["image"]
    assert "volumes" not in service and "privileged" not in service


@pytest.mark.docker
def test_cli_sandbox_build_names_the_current_image(capsys):
    from rps_evals.cli import main

    require_image()
    assert main(["sandbox", "build"]) == 0  # already built: returns at once with its name
    assert capsys.readouterr().out.strip() == sandbox_image()  # the one built here (online or offline)
