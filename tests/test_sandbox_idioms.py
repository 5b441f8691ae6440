"""Same answers, same scores, on any machine (issue 18), in both backends: the local runner and the
Docker sandbox run the same numpy 2, honest idioms work as under python3, and the per-call limit is
CPU time, so a loaded machine gives the same statuses as a quiet one."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import metadata

import pytest

from rps_evals.execution import Program
from rps_evals.execution.local import LocalExecutor, image_pins, version_differences

G = [[3, 1], [2, 2]]
T = [[5]]


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request):
    """Which backend; the executors are made by each test (limits differ)."""
    if request.param == "docker":
        from docker_support import require_image

        require_image()
    return request.param


def executor(backend: str, timeout: float, workers: int = 1):
    if backend == "docker":
        from rps_evals.execution.docker import DockerExecutor

        return DockerExecutor(timeout=timeout, workers=workers)
    return LocalExecutor(timeout=timeout, workers=workers)


# -- one numpy, 2.x, in every image and (as far as the host allows) locally ------------------------

# The numpy-2 idioms that were `error` (or, for unique's inverse, silently different) on numpy 1.24.
NUMPY_2 = """import numpy as np

def transform(grid):
    a = np.array(grid)
    values, inverse = np.unique(a, return_inverse=True)
    return [[int(a.astype(np.bool).sum())], [int(np.concat([a, a]).shape[0])],
            np.permute_dims(a, (1, 0)).ravel().tolist(), a[None].mT[0].ravel().tolist(),
            sorted(np.unique_values(a).tolist()), [np.astype(a, np.int8).itemsize],
            inverse.ravel().tolist(), [inverse.ndim]]
"""
# G = [[3, 1], [2, 2]]: 4 non-zero cells; 4 rows concatenated; the transpose [[3, 2], [1, 2]] twice;
# values 1, 2, 3; int8 is 1 byte; inverse [[2, 0], [1, 1]], 2-D as the input since numpy 2
NUMPY_2_OUTPUT = [[4], [4], [3, 2, 1, 2], [3, 2, 1, 2], [1, 2, 3], [1], [2, 0, 1, 1], [2]]


def test_numpy_2_idioms_run_alike_in_both_backends(backend):
    with executor(backend, timeout=10.0) as ex:
        [result] = ex.run([Program(NUMPY_2, [G])])
    assert (result.status, result.test_outputs) == ("ok", [NUMPY_2_OUTPUT]), result.error


@pytest.mark.docker
def test_the_image_has_the_pinned_numpy_and_scipy():
    from docker_support import require_image
    from rps_evals.execution.image import image_identity

    identity = image_identity(require_image())
    assert {"numpy": identity["numpy"], "scipy": identity["scipy"]} == image_pins()
    assert image_pins()["numpy"].startswith("2.")


def test_local_warns_once_when_this_machines_versions_differ(monkeypatch, capsys):
    import rps_evals.execution.local as local

    real = metadata.version
    monkeypatch.setattr(local.metadata, "version", lambda name: "1.24.2" if name == "numpy" else real(name))
    monkeypatch.setattr(local, "_warned", [])
    expected = f"numpy 1.24.2 here, {image_pins()['numpy']} in the sandbox image"
    assert expected in version_differences()
    local.warn_about_versions()
    local.warn_about_versions()
    err = capsys.readouterr().err
    assert err.count("WARNING: --sandbox local") == 1 and expected in err
    monkeypatch.setattr(local.metadata, "version", lambda name: image_pins()[name])
    assert version_differences() == []


# -- honest idioms work as under python3 ------------------------------------------------------------

POOLS_64 = """import multiprocessing
from concurrent.futures import ProcessPoolExecutor

def square(x):
    return x * x

def transform(grid):
    with multiprocessing.Pool(64) as pool:  # Pool()'s size on a 64-CPU host
        a = pool.map(square, range(64))
    with ProcessPoolExecutor(64) as ex:
        b = list(ex.map(square, range(64)))
    return [[len(a), sum(a), sum(b)]]
"""
THREADS_64 = """import threading
from concurrent.futures import ThreadPoolExecutor

barrier = threading.Barrier(64)

def work(i):
    barrier.wait(timeout=30)  # all 64 alive at once
    return i

def transform(grid):
    with ThreadPoolExecutor(max_workers=64) as ex:
        return [[len(list(ex.map(work, range(64))))]]
"""
BROKEN_PIPE = """import os

def transform(grid):
    r, w = os.pipe()
    os.close(r)
    try:
        os.write(w, b"x")  # python3 ignores SIGPIPE: this raises instead of killing the process
    except BrokenPipeError:
        return [[1]]
    return [[0]]
"""
SHARED_MEMORY = """from multiprocessing import shared_memory

def transform(grid):
    shm = shared_memory.SharedMemory(create=True, size=64)
    try:
        shm.buf[0] = 7
        other = shared_memory.SharedMemory(name=shm.name)
        value = other.buf[0]
        other.close()
    finally:
        shm.close()
        shm.unlink()
    return [[value]]
"""
RANDOM = "import numpy as np\n\ndef transform(grid):\n    return [np.random.randint(0, 1 << 30, 4).tolist()]\n"
DEEPEST = """def deepest():
    n = 0
    def down():
        nonlocal n
        n += 1
        down()
    try:
        down()
    except RecursionError:
        pass
    return n

def transform(grid):
    return [[deepest()]]
"""
# 5 MiB printed by the training call (the input T): only the test calls decide the status
PRINTS_IN_TRAINING = f"def transform(grid):\n    if grid == {T!r}:\n        print('x' * (5 << 20))\n    return grid\n"


def test_honest_idioms_work_as_under_python3(backend):
    programs = [Program(POOLS_64, [G]), Program(THREADS_64, [G]), Program(BROKEN_PIPE, [G]),
                Program(SHARED_MEMORY, [G]), Program(PRINTS_IN_TRAINING, [G], [T, G])]
    with executor(backend, timeout=30.0) as ex:
        results = ex.run(programs)
    assert [(r.status, r.test_outputs) for r in results] == [
        ("ok", [[[64, 85344, 85344]]]),  # 0^2 + ... + 63^2 = 85344
        ("ok", [[[64]]]),
        ("ok", [[[1]]]),
        ("ok", [[[7]]]),
        ("ok", [G]),
    ], [r.error[-500:] for r in results]
    assert results[-1].train_outputs == [None, None]  # killed in the training call: it and the next lost


def test_a_program_reaches_the_recursion_depth_a_script_does(backend):
    script = subprocess.run([sys.executable, "-c", DEEPEST + "print(transform(None)[0][0])"],
                            capture_output=True, text=True, check=True)
    with executor(backend, timeout=10.0) as ex:
        [result] = ex.run([Program(DEEPEST, [G])])
    assert (result.status, result.test_outputs) == ("ok", [[[int(script.stdout)]]]), result.error


def test_every_program_draws_its_own_random_numbers(backend):
    with executor(backend, timeout=10.0) as ex:
        results = ex.run([Program(RANDOM, [G]) for _ in range(6)])
    draws = [tuple(r.test_outputs[0][0]) for r in results]
    assert len(set(draws)) == 6, draws


# -- CPU time, not load, decides `timeout` ----------------------------------------------------------

def _spin(seconds: float) -> str:
    return f"t = time.process_time()\nwhile time.process_time() - t < {seconds}:\n    pass\n"


LIMIT = 0.5  # CPU seconds per call; a call of 0.3 s needs 6% of a core to end before the 5 s backstop


def _body(*lines: str) -> str:
    return "".join("    " + line + "\n" for chunk in lines for line in chunk.splitlines())


CPU_PROGRAMS = [
    # 0.15 s of CPU in the call
    "import time\ndef transform(grid):\n" + _body(_spin(0.15), "return grid"),
    # 0.3 s at module level and 0.3 s in the call: 0.6 s, but each has its own budget
    "import time\n" + _spin(0.3) + "def transform(grid):\n" + _body(_spin(0.3), "return grid"),
    # 0.3 s in each of two calls (a test and a training one): 0.6 s in all, each call under the limit
    "import time\ndef transform(grid):\n" + _body(_spin(0.3), "return grid"),
    # two processes of 0.3 s each: 0.6 s of the program's CPU in one call
    "import os, time\ndef transform(grid):\n"
    + _body("pid = os.fork()", _spin(0.3), "if pid == 0:\n    os._exit(0)", "os.waitpid(pid, 0)", "return grid"),
    # never ends
    "def transform(grid):\n    while True:\n        pass\n",
]
CPU_STATUSES = ["ok", "ok", "ok", "timeout", "timeout"]


def _statuses(backend: str) -> list[tuple[str, str]]:
    programs = [Program(source, [G], [T] if i == 2 else []) for i, source in enumerate(CPU_PROGRAMS)]
    with executor(backend, timeout=LIMIT) as ex:
        return [(r.status, r.error[:200]) for r in ex.run(programs)]


def test_the_same_programs_get_the_same_statuses_quiet_and_under_two_busy_loops(backend):
    """The per-call limit is CPU seconds of all the program's processes, with a 10x wall-clock
    backstop: two busy loops started here (on a 2-core machine, a third of a core each for us)
    change no status. Before, load turned correct programs into timeouts."""
    quiet = _statuses(backend)
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.2)
        loaded = _statuses(backend)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert [status for status, _ in quiet] == CPU_STATUSES, quiet
    assert [status for status, _ in loaded] == CPU_STATUSES, loaded
    assert "CPU time limit of 0.5 s" in quiet[3][1] and "CPU time limit of 0.5 s" in quiet[4][1]


def test_a_program_stopped_by_the_wall_clock_backstop_says_so(backend):
    with executor(backend, timeout=0.2) as ex:
        [result] = ex.run([Program("import time\ndef transform(grid):\n    time.sleep(60)\n", [G])])
    assert result.status == "timeout"
    assert result.error.startswith("a call ran for 2 s of wall-clock time, the backstop of its 0.2 s CPU time limit")
