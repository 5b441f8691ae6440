"""The fork-server runner's semantics (docs/metrics.md, "Executing a program"), through the local
backend: no Docker needed. Hostile programs are tested against Docker in test_sandbox_hostile.py."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from rps_evals.execution import Program
from rps_evals.execution.local import LocalExecutor
from rps_evals.execution.protocol import RUNNER_PATH
from sandbox_programs import honest_and_thief

G1, G2, T1 = [[1, 2], [3, 4]], [[5, 6]], [[7]]


@pytest.fixture(scope="module")
def executor():
    with LocalExecutor(timeout=1.0, workers=2) as ex:
        yield ex


def run(executor, source, tests=(G1,), train=()):
    return executor.run([Program(source, list(tests), list(train))])[0]


def test_a_correct_program_is_ok_with_its_outputs(executor):
    result = run(executor, "def transform(grid):\n    return [r[::-1] for r in grid]\n", [G1, G2], [T1])
    assert (result.status, result.test_outputs, result.train_outputs, result.error) == \
        ("ok", [[[2, 1], [4, 3]], [[6, 5]]], [[[7]]], "")


@pytest.mark.parametrize("source, fragment", [
    ("def transform(grid):\n    return 1 / 0\n", "ZeroDivisionError"),
    ("def transform(grid)\n    return grid\n", "SyntaxError"),
    ("def solve(grid):\n    return grid\n", "no callable transform"),
    ("transform = 3\n", "no callable transform"),
    ("raise RuntimeError('at import')\ndef transform(grid):\n    return grid\n", "at import"),
    ("def transform(grid):\n    return object()\n", "non-serialisable object"),
    ("def transform(grid):\n    return [[float('nan')]]\n", "ValueError"),
    ("import sys\ndef transform(grid):\n    sys.exit(3)\n", "SystemExit"),
])
def test_exceptions_crashes_and_bad_returns_are_errors(executor, source, fragment):
    result = run(executor, source)
    assert result.status == "error" and fragment in result.error
    assert result.test_outputs == [None]


def test_nothing_to_run_is_no_program(executor):
    result = executor.run([Program(None, [G1, G2], [T1])])[0]
    assert (result.status, result.test_outputs, result.train_outputs) == ("no_program", [None, None], [None])


@pytest.mark.parametrize("source", [
    "def transform(grid):\n    while True:\n        pass\n",
    "import time\ndef transform(grid):\n    time.sleep(30)\n",
    "while True:\n    pass\n",  # at import
])
def test_a_call_past_its_limit_is_a_timeout(source):
    start = time.monotonic()
    with LocalExecutor(timeout=0.3, workers=1) as executor:  # 0.3 s of CPU; a sleeper ends at 3 s of wall
        result = run(executor, source)
    assert result.status == "timeout" and "limit" in result.error
    assert time.monotonic() - start < 10


def test_timeout_is_checked_before_error(executor):
    source = f"def transform(grid):\n    if grid == {G1!r}:\n        raise ValueError('first')\n    while True:\n        pass\n"
    assert run(executor, source, [G1, G2]).status == "timeout"


def test_outputs_after_a_failing_test_call_are_kept(executor):
    source = f"def transform(grid):\n    if grid == {G1!r}:\n        raise ValueError('first')\n    return grid\n"
    result = run(executor, source, [G1, G2], [T1])
    assert result.status == "error" and "first" in result.error
    assert result.test_outputs == [None, G2] and result.train_outputs == [T1]


@pytest.mark.parametrize("train_body", ["raise ValueError('train only')", "while True:\n            pass"])
def test_train_calls_do_not_change_the_status(executor, train_body):
    source = f"def transform(grid):\n    if grid == {T1!r}:\n        {train_body}\n    return grid\n"
    result = run(executor, source, [G1, G2], [T1, G1])
    assert result.status == "ok" and result.test_outputs == [G1, G2]
    assert result.train_outputs[0] is None


def test_numpy_and_tuple_returns_are_converted(executor):
    source = ("import numpy as np\ndef transform(grid):\n    a = np.array(grid, dtype=np.uint8)\n"
              "    if grid[0][0] == 1:\n        return a\n"
              "    if grid[0][0] == 5:\n        return tuple(tuple(np.int64(c) for c in r) for r in grid)\n"
              "    return a > 3\n")
    result = run(executor, source, [G1, G2, [[7, 0]]])
    assert result.status == "ok"
    assert result.test_outputs == [G1, G2, [[True, False]]]
    assert all(type(c) is int for row in result.test_outputs[0] + result.test_outputs[1] for c in row)
    assert all(type(c) is bool for c in result.test_outputs[2][0])


def test_each_call_gets_a_fresh_copy_but_the_program_keeps_its_globals(executor):
    source = "calls = []\ndef transform(grid):\n    calls.append(1)\n    grid[0][0] = 9\n    return [[len(calls), grid[0][1]]]\n"
    result = run(executor, source, [G1, G1])
    assert result.test_outputs == [[[1, 2]], [[2, 2]]]


def test_every_program_starts_from_a_clean_process(executor):
    poison = ("import builtins, numpy as np\nbuiltins.leak = 1\nnp.leak = 1\n"
              "def transform(grid):\n    builtins.len = lambda x: 0\n    return grid\n")
    check = ("import builtins, numpy as np\n"
             "def transform(grid):\n    return [[int(hasattr(builtins, 'leak')), int(hasattr(np, 'leak')), len([1])]]\n")
    results = executor.run([Program(poison, [G1]), Program(check, [G1]), Program(check, [G1])])
    assert [r.test_outputs for r in results] == [[G1], [[[0, 0, 1]]], [[[0, 0, 1]]]]


def test_the_per_call_limit_restarts_with_every_call():
    # 3 x 1.2 s = 3.6 s in all, over the 3 s limit; each call 1.8 s under it, a margin a busy machine keeps
    source = "import time\ndef transform(grid):\n    time.sleep(1.2)\n    return grid\n"
    with LocalExecutor(timeout=3.0, workers=1) as ex:
        assert run(ex, source, [G1, G2, T1]).status == "ok"


def test_printing_is_captured_and_capped(executor):
    chatty = run(executor, "def transform(grid):\n    print('looking at', grid)\n    return grid\n")
    assert chatty.status == "ok"
    failing = run(executor, "def transform(grid):\n    print('clue 42')\n    raise KeyError(7)\n")
    assert failing.status == "error" and "clue 42" in failing.error and "KeyError" in failing.error
    flood = run(executor, "def transform(grid):\n    print('x' * 50_000_000)\n    return grid\n")
    assert flood.status == "error" and "printed more than" in flood.error
    assert len(flood.error) < 5000


def test_huge_and_self_referencing_returns_are_errors(executor):
    assert "elements" in run(executor, "import numpy as np\ndef transform(grid):\n    return np.zeros((1000, 1000))\n").error
    loop = run(executor, "def transform(grid):\n    a = [1]\n    a.append(a)\n    return a\n")
    assert loop.status == "error" and "self-referencing" in loop.error
    gen = run(executor, "def transform(grid):\n    return (r for r in grid)\n")
    assert gen.status == "error" and "generator" in gen.error


def test_results_come_back_in_input_order(executor):
    programs = [Program(f"import time\ndef transform(grid):\n    time.sleep({0.2 if i % 3 == 0 else 0})\n"
                        f"    return [[{i}]]\n", [G1]) for i in range(12)]
    assert [r.test_outputs for r in executor.run(programs)] == [[[[i]]] for i in range(12)]


def test_a_dead_runner_fails_only_its_programs_and_is_restarted():
    with LocalExecutor(timeout=5.0, workers=1) as ex:
        future = ex.submit(Program("import time\ndef transform(grid):\n    time.sleep(3)\n", [G1]))
        time.sleep(0.5)
        ex._proc.kill()
        result = future.result(timeout=10)
        assert result.status == "error" and "runner" in result.error
        assert ex.run([Program("def transform(grid):\n    return grid\n", [G1])])[0].status == "ok"


def test_runner_protocol_hello_bad_requests_and_ids():
    lines = [
        "not json",
        json.dumps({"id": "a", "source": "def transform(g):\n    return g\n", "inputs": [G1], "num_tests": 1}),
        json.dumps({"id": "b", "inputs": [G1]}),
        '{"id": 9, "source": "def transform(g):\\n    return g\\n", "inputs": [[[NaN]]]}',  # strict: no NaN
        json.dumps({"id": "c", "source": "def transform(g):\n    return g\n", "inputs": [G1, T1], "num_tests": 1}),
    ]
    done = subprocess.run([sys.executable, "-I", RUNNER_PATH, "--workers", "1", "--hello"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[0]["ready"] is True and answers[0]["id"] is None
    by_id = {a["id"]: a for a in answers[1:]}
    assert by_id["a"]["status"] == "ok" and by_id["c"]["outputs"] == [G1, T1]
    assert by_id["b"]["status"] == "error" and "bad request" in by_id["b"]["error"]
    # a line it cannot parse keeps the id it starts with, so the host can match the refusal
    assert by_id[9]["status"] == "error" and "NaN is not a JSON number" in by_id[9]["error"]
    assert by_id[None]["status"] == "error" and "bad request" in by_id[None]["error"]
    assert done.returncode == 0


def test_exclusive_mode_refuses_to_run_outside_a_container():
    done = subprocess.run([sys.executable, "-I", RUNNER_PATH, "--exclusive"], input="", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "PID 1" in done.stderr


# -- issue 9: what protects the programs after a hostile one, as far as it applies locally ------

def test_a_program_finds_nothing_of_the_program_before_it():
    """Every program is forked from a zygote that never held a request: the frames above the
    program, gc and its own memory hold nothing of the earlier program's source or answer."""
    honest, thief = honest_and_thief("rps-secret-" + "5e1f" * 3, 734_211)
    with LocalExecutor(timeout=10.0, workers=1) as ex:
        first, stolen = ex.run([Program(honest, [G1]), Program(thief, [G1])])
    assert (first.status, first.test_outputs) == ("ok", [[[734_211]]])
    readable = 0 if os.geteuid() == 0 else -1  # /proc/self/mem of a non-dumpable process is root's
    assert (stolen.status, stolen.test_outputs) == ("ok", [[[0, 0, readable]]]), stolen.error


RUNNER = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"  # the zygote's parent


@pytest.mark.parametrize("attack, reason", [
    (f"resource.prlimit({RUNNER}, resource.RLIMIT_FSIZE, (0, 0))", "RLIMIT_FSIZE of the runner"),
    (f"os.setpriority(os.PRIO_PROCESS, {RUNNER}, 19)", "nice of the runner"),
    ("os.setpriority(os.PRIO_PROCESS, os.getppid(), 7)", "nice of the zygote"),  # our parent
])
def test_a_program_that_changes_the_runner_is_blamed_and_the_runner_replaced(attack, reason):
    """Locally a program runs under the runner's own uid and can change its state; the check after
    every program catches it, marks that program `error` and the runner retires: the programs it
    had not answered run on a fresh runner, unharmed."""
    saboteur = f"import os, resource\ndef transform(grid):\n    {attack}\n    return grid\n"
    check = "import os\ndef transform(grid):\n    return [[os.getpriority(os.PRIO_PROCESS, 0), int(os.path.exists('/'))]]\n"
    with LocalExecutor(timeout=5.0, workers=1) as ex:
        assert ex.run([Program(check, [G1])])[0].test_outputs == [[[0, 1]]]
        before = ex._proc.pid
        results = ex.run([Program(saboteur, [G1]), Program(check, [G1]), Program(check, [G1])])
        after = ex._proc.pid
    assert results[0].status == "error" and reason in results[0].error and "replaced" in results[0].error
    assert [(r.status, r.test_outputs) for r in results[1:]] == [("ok", [[[0, 1]]])] * 2
    assert after != before


@pytest.mark.parametrize("line", [b'{"i": 0, "out": NaN}', b'{"i": 0, "out": [[1e999]]}', b"[" * 100_000,
                                  b'\xff\xfe{"i": 0}', b'{"i": 0, "out": ' + b"9" * 100_000 + b"}"])
def test_any_bytes_on_the_result_channel_are_the_programs_error(executor, line):
    source = f"import os\ndef transform(grid):\n    os.write(3, {line + bytes([10])!r})\n    return grid\n"
    pid = executor._proc.pid
    forged, after = executor.run([Program(source, [G1]), Program("def transform(grid):\n    return grid\n", [G2])])
    assert forged.status == "error" and "result channel" in forged.error
    assert (after.status, after.test_outputs) == ("ok", [G2])
    assert executor._proc.pid == pid  # the runner survived


def test_programs_may_not_exec():
    """The seccomp filter: an exec'd binary would be dumpable again (and could lower oom_score_adj)."""
    source = "import os, sys\ndef transform(grid):\n    os.execv(sys.executable, [sys.executable, '-c', 'pass'])\n"
    with LocalExecutor(timeout=5.0, workers=1) as ex:
        [result] = ex.run([Program(source, [G1])])
    assert result.status == "error" and "Operation not permitted" in result.error


def test_megabyte_requests_and_answers_never_deadlock():
    """A ~7 MB request written while the runner writes a ~7 MB answer: requests are written under
    their own lock, so the reader always gets to read."""
    big_answer = Program("def transform(grid):\n    return 'y' * 900_000\n", [[[0]]] * 8)  # ~7 MB back, at once
    big_request = Program("def transform(grid):\n    return [[len(grid[0])]]\n", [[[0] * 300_000]] * 8)  # ~7 MB sent
    with LocalExecutor(timeout=10.0, workers=1) as ex:
        futures = [ex.submit(p) for p in [big_answer, big_request] * 3]
        results = [f.result(timeout=300) for f in futures]
    assert [(r.status, r.test_outputs) for r in results] == [("ok", ["y" * 900_000] * 8), ("ok", [[[300_000]]] * 8)] * 3


def test_a_too_long_program_is_an_error_without_running():
    source = "# " + "x" * (2 << 20) + "\ndef transform(grid):\n    return grid\n"
    with LocalExecutor(timeout=5.0, workers=1) as ex:
        [refused] = ex.run([Program(source, [G1])])
    assert refused.status == "error" and "characters long" in refused.error
    # the runner refuses it by itself too (the Inspect path sends it unchecked)
    request = json.dumps({"id": 7, "source": source, "inputs": [G1], "num_tests": 1})
    done = subprocess.run([sys.executable, "-I", RUNNER_PATH, "--workers", "1"], input=request + "\n",
                          capture_output=True, text=True, timeout=60)
    [answer] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (answer["id"], answer["status"], answer["error"]) == (7, "error", refused.error)


LEAVE_BEHIND = """import os, socket
def transform(grid):
    os.chdir({root!r})
    os.makedirs("a/b/c")
    open("a/b/c/f", "w").close()
    for d in ("a/b/c", "a/b", "a"):
        os.chmod(d, 0)
    os.mkfifo("fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind("sock")
    os.symlink("loop", "loop")
    os.mkdir("deep")
    os.chdir("deep")
    for _ in range(3000):
        os.mkdir("d")
        os.chdir("d")
    return grid
"""
COUNT_LEFT = "import os\ndef transform(grid):\n    return [[len(os.listdir({root!r}))]]\n"


def _runner(root, *requests, extra=()):
    lines = [json.dumps({"id": i, "source": source.format(root=str(root)), "inputs": [G1], "num_tests": 1})
             for i, source in enumerate(requests)]
    done = subprocess.run([sys.executable, "-I", RUNNER_PATH, "--workers", "1", "--timeout", "10",
                           "--scratch", str(root), *extra], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120)
    return done, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def scratch(tmp_path):
    """A scratch directory on tmpfs where there is one, as in the container (a disk's rmdir can be
    slow enough here for 3000 of them to pass the cleanup limit)."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    path = tempfile.mkdtemp(dir="/dev/shm", prefix="rps-test-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_whatever_a_program_leaves_in_scratch_is_removed_before_the_next(scratch):
    """Modes 000, a tree 3000 deep, fifos, sockets, symlink loops: the cleaner (never the runner
    itself) removes them all, and the runner lives on."""
    done, answers = _runner(scratch, LEAVE_BEHIND, COUNT_LEFT)
    assert [(a["id"], a["status"]) for a in answers] == [(0, "ok"), (1, "ok")], answers
    assert answers[1]["outputs"] == [[[0]]] and list(scratch.iterdir()) == []
    assert done.returncode == 0


def test_cleanup_past_its_limit_is_charged_to_the_program_that_caused_it(scratch):
    """The cleanup has a time limit; past it the program that left the files is `error` saying so,
    and the runner retires (the next program would otherwise find them): it answers no more."""
    leave = "def transform(grid):\n" \
            "    for i in range(2000):\n        open({root!r} + f'/f{{i}}', 'w').close()\n    return grid\n"
    done, answers = _runner(scratch, leave, COUNT_LEFT, extra=("--cleanup-limit", "0"))
    assert [a["id"] for a in answers] == [0, None]
    assert answers[0]["status"] == "error" and "than the runner can remove in 0 s" in answers[0]["error"]
    assert answers[1]["retire"] == answers[0]["error"]
    assert done.returncode == 0


# -- the red team after issue 9 -------------------------------------------------------------------

ECHO = "def transform(grid):\n    return grid\n"


@pytest.mark.parametrize("program, why", [
    (Program(ECHO, [[[float("nan")]]]), "strict JSON"),
    (Program(ECHO, [G1], [[[float("-inf")]]]), "strict JSON"),
    (Program(ECHO, [G1], [[[7] * 1000] * 1000] * 23), "at most 67108864"),  # 23 x 3 MB of JSON
], ids=["nan_in_a_test_input", "infinity_in_a_train_input", "request_over_64_mib"])
def test_a_request_the_runner_would_refuse_is_an_error_never_a_hang(executor, program, why):
    """These got a `bad request` answer with id null, which the host dropped: the future never
    resolved. Now they are built as strictly as the runner reads them and refused before sending."""
    pid = executor._proc.pid
    refused, after = [f.result(timeout=60) for f in (executor.submit(program), executor.submit(Program(ECHO, [G2])))]
    assert refused.status == "error" and why in refused.error
    assert (refused.test_outputs, refused.train_outputs) == ([None] * len(program.test_inputs),
                                                             [None] * len(program.train_inputs))
    assert (after.status, after.test_outputs) == ("ok", [G2])
    assert executor._proc.pid == pid


def test_an_answer_without_id_resolves_the_oldest_request(monkeypatch):
    """Defence in depth: a line the runner cannot read at all (the host never sends one) is answered
    with id null; it resolves the oldest request waiting, so none waits forever."""
    import rps_evals.execution.protocol as protocol

    real = protocol.request_line
    with LocalExecutor(timeout=5.0, workers=1) as ex:
        monkeypatch.setattr(protocol, "request_line", lambda *args: b"not json\n")
        unreadable = ex.submit(Program(ECHO, [G1]))
        monkeypatch.setattr(protocol, "request_line", real)
        result = unreadable.result(timeout=60)
        after = ex.run([Program(ECHO, [G2])])[0]
    assert result.status == "error" and "bad request" in result.error
    assert (after.status, after.test_outputs) == ("ok", [G2])


def test_programs_may_not_make_siblings_or_inet_sockets_but_threads_and_fork_work(executor):
    """seccomp: clone(CLONE_PARENT) is refused (its child would be the zygote's), clone3 is ENOSYS
    (libc falls back to clone), inet/netlink/packet sockets are refused; threads, fork and AF_UNIX
    socketpairs still work."""
    source = """import ctypes, errno, os, socket, threading
def transform(grid):
    libc = ctypes.CDLL(None, use_errno=True)
    sibling = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)  # x86_64 clone(CLONE_PARENT | SIGCHLD)
    if sibling == 0:
        os._exit(0)
    sibling_errno = ctypes.get_errno()
    clone3 = libc.syscall(435, 0, 0)
    clone3_errno = ctypes.get_errno()
    refused = []
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
        try:
            socket.socket(family, socket.SOCK_DGRAM if family != socket.AF_PACKET else socket.SOCK_RAW).close()
        except OSError as exc:
            refused.append(exc.errno)
    out = []
    thread = threading.Thread(target=out.append, args=(5,))
    thread.start()
    thread.join()
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    a, b = socket.socketpair()
    return [[sibling, sibling_errno, clone3, clone3_errno, *refused, *out, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])]]
"""
    if os.uname().machine != "x86_64":
        pytest.skip("the program uses x86_64 syscall numbers")
    result = run(executor, source)
    assert (result.status, result.test_outputs) == ("ok", [[[-1, 1, -1, 38, 97, 97, 97, 97, 5, 3]]]), result.error


def _patched_runner(patch: str, *sources):
    """The runner in a process of its own with `patch` applied to its module first (to reach the
    defences behind the seccomp filter)."""
    lines = [json.dumps({"id": i, "source": source, "inputs": [G1], "num_tests": 1}) for i, source in enumerate(sources)]
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(RUNNER_PATH)!r}); import runner.main; {patch}; "
            "runner.main.main(['--workers', '1', '--timeout', '10'])")
    done = subprocess.run([sys.executable, "-I", "-c", code], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=120)
    return done, [json.loads(line) for line in done.stdout.splitlines()]


SIBLINGS = """import ctypes, os, time
def transform(grid):
    libc = ctypes.CDLL(None, use_errno=True)
    made = 0
    for i in range(40):  # half exit at once (zombies of the zygote), half live on (the sweep kills them)
        pid = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)
        if pid == 0:
            if i % 2:
                time.sleep(100)
            os._exit(0)
        made += pid > 0
    return [[made]]
"""
ZYGOTE_CHILDREN = """import os
def transform(grid):
    zygote = os.getppid()
    return [[len(open(f"/proc/{zygote}/task/{zygote}/children").read().split())]]
"""


def test_the_zygote_reaps_the_siblings_a_program_gave_it():
    """Behind seccomp: without the filter, 40 clone(CLONE_PARENT) children are the zygote's (within
    the 256 processes a program may add, as a non-root runner counts them). It
    reaps every child, not only those it forked, and the sweep kills the live ones: the next
    program finds the zygote with one child, itself."""
    if os.uname().machine != "x86_64":
        pytest.skip("the program uses x86_64 syscall numbers")
    done, answers = _patched_runner("runner.seccomp.build_filter = lambda *a: None", SIBLINGS, ZYGOTE_CHILDREN)
    assert [(a["id"], a["status"], a["outputs"]) for a in answers] == [(0, "ok", [[[40]]]), (1, "ok", [[[1]]])], answers
    assert done.returncode == 0


def test_a_sweep_that_leaves_processes_is_charged_to_the_program_and_the_runner_retires():
    """A sweep that runs out of rounds with processes left (here: after one round) marks the program
    that left them `error` and the runner retires, answering no more."""
    daemon = "import os, time\ndef transform(grid):\n    if os.fork() == 0:\n        time.sleep(100)\n    return grid\n"
    done, answers = _patched_runner("runner.limits.SWEEP_ROUNDS = 1", daemon, ECHO)
    assert [a["id"] for a in answers] == [0, None]
    assert answers[0]["status"] == "error" and "still killing after 1 rounds" in answers[0]["error"]
    assert answers[1]["retire"] == answers[0]["error"]
    assert done.returncode == 0


# -- the red team, round 2 ------------------------------------------------------------------------

def test_honest_programs_that_need_a_real_module_and_many_threads_are_ok(executor):
    """The program is a real module in sys.modules under its old __name__ (not "__main__"): dataclasses
    with string annotations or slots, pickling its functions for process pools and
    sys.modules[__name__] work; 24 threads fit in its address space (2 malloc arenas, not 8 per CPU)."""
    from test_sandbox_hostile import DATACLASSES, PROCESS_POOLS, THREADS_24

    results = executor.run([Program(source, [G1]) for source in (DATACLASSES, PROCESS_POOLS, THREADS_24)])
    assert [(r.status, r.test_outputs) for r in results] == [
        ("ok", [[[1, 2, 1]]]), ("ok", [[[1, 4], [9, 16]] * 2]), ("ok", [[[24, 990_000, 22_770_000]]])], \
        [r.error for r in results]


def test_a_traceback_names_the_programs_own_lines(executor):
    source = "import sys\n\ndef helper(grid):\n    return grid[5]\n\ndef transform(grid):\n    return helper(grid)\n"
    result = run(executor, source)
    assert result.status == "error"
    assert 'File "<program>", line 7, in transform' in result.error
    assert 'File "<program>", line 4, in helper' in result.error and "IndexError" in result.error
    assert "    return grid[5]" in result.error  # the failing line itself, as from a file
    at_import = run(executor, "x = 1\nraise KeyError('at import')\n")
    assert 'File "<program>", line 2, in <module>' in at_import.error and "KeyError: 'at import'" in at_import.error


def test_a_program_finds_its_own_source_and_file_as_a_file_would_give_them(executor):
    """Red team round 3: inspect.getsource and __file__ work on a program's own functions."""
    from test_sandbox_hostile import OWN_SOURCE

    result = run(executor, OWN_SOURCE)
    assert (result.status, result.test_outputs) == ("ok", [[[2, 1]]]), result.error


def test_resources_a_dead_program_still_holds_are_charged_to_it_and_the_runner_retires():
    """After a program the runner compares the free space of its scratch tmpfs and the unix sockets of
    the container with the start (an SCM_RIGHTS cycle keeps unlinked files and memfds alive after
    their processes); it triggers the kernel's unix garbage collector and, if they are still held,
    blames that program and retires. Locally nothing is compared (the host shares both): here the
    comparison is made to report something held."""
    done, answers = _patched_runner("runner.supervisor.Runner._held = lambda self: ['space in /tmp']; runner.limits.GC_WAIT = 0",
                                    ECHO, ECHO)
    assert [a["id"] for a in answers] == [0, None]
    assert answers[0]["status"] == "error"
    assert answers[0]["error"] == ("the program left space in /tmp held after it ended, which the runner could "
                                   "not free; the runner was replaced")
    assert answers[1]["retire"] == answers[0]["error"]
    assert done.returncode == 0


def test_programs_may_not_have_their_children_reaped_by_the_kernel(executor):
    """Outside a container's cgroup (the local backend, Inspect's sandbox) the CPU of children the
    kernel reaps itself is counted nowhere: seccomp refuses to change SIGCHLD's disposition
    (signal(SIGCHLD, SIG_IGN), SA_NOCLDWAIT through ctypes alike); reading it still works."""
    source = """import ctypes, signal
def transform(grid):
    refused = []
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    except OSError as exc:
        refused.append(exc.errno)
    libc = ctypes.CDLL(None, use_errno=True)
    act = (ctypes.c_char * 152)()                          # struct sigaction, sa_handler = SIG_DFL
    ctypes.c_ulong.from_buffer(act, 8).value = 2           # sa_flags = SA_NOCLDWAIT
    rc = libc.syscall(13, signal.SIGCHLD, act, None, 8)    # x86_64 rt_sigaction
    refused.append(ctypes.get_errno() if rc else 0)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)          # other signals are the program's own
    return [[*refused, int(signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL)]]
"""
    if os.uname().machine != "x86_64":
        pytest.skip("the program uses x86_64 syscall numbers")
    result = run(executor, source)
    assert (result.status, result.test_outputs) == ("ok", [[[1, 1, 1]]]), result.error
