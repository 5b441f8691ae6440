"""The hostile-program battery (issue 3), against the real Docker sandbox.

Every hostile program runs in a batch with a follow-up program on ONE container (workers=1), so the
follow-up runs right after it in the same runner. Each test asserts the hostile program's exact
status, that the follow-up ran normally and found a clean container (no other process, no file
left in /tmp or /dev/shm, builtins/numpy/json intact), that the runner was not restarted, and that
nothing on the host changed (a secret file next to the test: same bytes, same mtime, no new files;
a listener on the host's 127.0.0.1 got no connection; nothing appeared at /).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass

import pytest

from docker_support import require_image
from rps_evals.execution import Program
from rps_evals.execution.docker import DockerExecutor

pytestmark = pytest.mark.docker

TIMEOUT = 2.0  # the default; generous so that a loaded CI machine does not turn errors into timeouts
GRID = [[1, 2], [3, 4]]

FOLLOW_UP = """
import builtins, json, os
import numpy as np

def transform(grid):
    me = os.getpid()
    others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
    left = os.listdir("/tmp") + os.listdir("/dev/shm")
    sane = (np.rot90(np.array([[1, 2]])).tolist() == [[2], [1]] and len([1, 2, 3]) == 3
            and sorted([3, 1]) == [1, 3] and callable(print) and json.dumps([1]) == "[1]"
            and not hasattr(builtins, "poisoned"))
    return [[len(others), len(left), int(sane)]] + [list(r) for r in grid]
"""
FOLLOW_UP_GRID = [[4, 5]]
FOLLOW_UP_OUTPUT = [[0, 0, 1], [4, 5]]


@dataclass(frozen=True)
class Hostile:
    name: str
    source: str  # {secret!r}, {secret_dir!r} and {port} are filled in from the host guard
    status: str
    error: str = ""  # a substring the error must contain
    outputs: list | None = None  # exact test outputs, where the program returns


def _fn(body: str, imports: str = "") -> str:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"{imports}\ndef transform(grid):\n{lines}\n"


CASES = [
    # time
    Hostile("infinite_loop", _fn("while True:\n    pass"), "timeout", "limit"),
    Hostile("sleep_forever", _fn("time.sleep(1e9)", "import time"), "timeout", "limit"),
    # processes
    Hostile("fork_bomb", _fn("while True:\n    os.fork()", "import os"), "error"),
    Hostile("fork_bomb_ignoring_errors",
            _fn("while True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "import os"), "timeout"),
    Hostile("daemon_and_tmp_file_left_behind",
            _fn("open('/tmp/leak', 'w').write('state')\n"
                "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1e9)\n    os._exit(0)\n"
                "return grid", "import os, time"), "ok", outputs=[GRID]),
    Hostile("threads_left_running",
            _fn("for _ in range(4):\n    threading.Thread(target=spin).start()\n"
                "threading.Thread(target=time.sleep, args=(1e9,), daemon=True).start()\nreturn grid",
                "import threading, time\ndef spin():\n    while True:\n        pass\n"), "ok", outputs=[GRID]),
    Hostile("kill_pid_1", _fn("os.kill(1, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\nreturn grid",
                              "import os, signal"), "ok", outputs=[GRID]),
    Hostile("stop_pid_1", _fn("os.kill(1, signal.SIGSTOP)\nreturn grid", "import os, signal"), "ok", outputs=[GRID]),
    Hostile("ptrace_the_runner", _fn("return [[ctypes.CDLL(None).ptrace(16, 1, 0, 0)]]", "import ctypes"),
            "ok", outputs=[[[-1]]]),
    Hostile("sys_exit", _fn("sys.exit(0)", "import sys"), "error", "SystemExit"),
    Hostile("os_exit", _fn("os._exit(0)", "import os"), "error", "ended early (exit code 0)"),
    Hostile("segfault_via_ctypes", _fn("ctypes.string_at(0)", "import ctypes"), "error", "SIGSEGV"),
    Hostile("recursion_bomb", _fn("return transform(grid)"), "error", "RecursionError"),
    Hostile("c_stack_bomb",
            _fn("sys.setrecursionlimit(10**6)\nx = []\nfor _ in range(2 * 10**5):\n    x = [x]\nreturn repr(x)", "import sys"),
            "error", "SIGSEGV"),
    # memory and output
    Hostile("allocate_20_gb", _fn("return bytearray(20 * 2**30)"), "error", "MemoryError"),
    Hostile("allocate_20_gb_numpy", _fn("return np.ones((20 * 2**30) // 8)", "import numpy as np"),
            "error", "MemoryError"),
    Hostile("memory_bomb_in_many_processes",  # the container's OOM killer picks a child, never the runner
            _fn("for _ in range(5):\n    if os.fork() == 0:\n        x = bytearray(400 * 2**20)\n"
                "        time.sleep(1e9)\ntime.sleep(1)\nreturn grid", "import os, time"), "ok", outputs=[GRID]),
    Hostile("allocate_until_it_fails", _fn("x = []\nwhile True:\n    x.append(np.empty(10**8, dtype=np.uint8))",
                                           "import numpy as np"), "error", "MemoryError"),
    Hostile("print_100_mb", _fn("print('x' * 100_000_000)\nreturn grid"), "error", "printed more than"),
    Hostile("print_forever", _fn("while True:\n    print('spam' * 1000)"), "error", "printed more than"),
    Hostile("forge_result_channel", _fn("os.write(3, b'{\"i\": 0, \"out\": [[9]]}\\n' * 1000)\nreturn grid", "import os"),
            "error", "result channel"),
    # files
    Hostile("write_to_root", _fn("open('/rps_pwned', 'w').write('x')\nreturn grid"), "error", "Read-only file system"),
    Hostile("overwrite_the_runner", _fn("open('/opt/rps/runner.py', 'a').write('x')\nreturn grid"),
            "error", "Permission denied"),  # root's file on a read-only root
    Hostile("fill_tmp", _fn("for i in range(1000):\n    with open(f'/tmp/f{i}', 'wb') as f:\n"
                            "        f.write(b'x' * (1 << 20))"), "error", "No space left on device"),
    Hostile("file_past_size_limit", _fn("open('/tmp/big', 'wb').write(b'x' * (2 << 20))"), "error", "File too large"),
    Hostile("write_host_file", _fn("open({secret!r}, 'w').write('pwned')\nreturn grid"), "error", "No such file"),
    Hostile("read_host_file", _fn("return [[len(open({secret!r}).read())]]"), "error", "No such file"),
    Hostile("list_host_dir", _fn("return [[len(os.listdir({secret_dir!r}))]]", "import os"), "error", "No such file"),
    Hostile("read_runner_environ", _fn("return [[len(open('/proc/1/environ').read())]]"), "error", "Permission denied"),
    # network
    Hostile("connect_host_loopback", _fn("socket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn grid",
                                         "import socket"), "error", "Connection refused"),
    Hostile("connect_outside", _fn("socket.create_connection(('192.0.2.1', 80), timeout=1)\nreturn grid",
                                   "import socket"), "error", "Network is unreachable"),
    Hostile("resolve_a_name", _fn("socket.getaddrinfo('example.com', 80)\nreturn grid", "import socket"),
            "error", "gaierror"),
    # poisoning later programs
    Hostile("monkey_patch_builtins_numpy_json",
            _fn("builtins.sorted = lambda *a, **k: []\nbuiltins.print = None\nbuiltins.poisoned = True\n"
                "np.rot90 = lambda *a, **k: 0\nnp.array = lambda *a, **k: 0\njson.dumps = lambda *a, **k: 'x'\n"
                "return grid", "import builtins, json\nimport numpy as np"), "ok", outputs=[GRID]),
    # return values
    Hostile("return_generator", _fn("return (row for row in grid)"), "error", "non-serialisable generator"),
    Hostile("return_huge_array", _fn("return np.zeros((5000, 5000), dtype=int)", "import numpy as np"),
            "error", "25000000 elements"),
    Hostile("return_huge_list", _fn("return [[0] * 2000 for _ in range(2000)]"), "error", "more than"),
    Hostile("return_self_referencing_list", _fn("a = []\na.append(a)\nreturn a"), "error", "self-referencing"),
]


@pytest.fixture(scope="module")
def executor():
    image = require_image()
    with DockerExecutor(timeout=TIMEOUT, workers=1, image=image) as ex:
        ex.start()
        yield ex


class HostGuard:
    """Host state a contained program cannot touch: a secret file, its directory, a listener."""

    def __init__(self, directory):
        self.dir = directory
        self.secret = directory / "secret.txt"
        self.secret.write_text("host secret " + os.urandom(8).hex())
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.before = self.snapshot()

    def snapshot(self):
        return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in self.dir.iterdir()}

    def render(self, source: str) -> str:
        return (source.replace("{secret!r}", repr(str(self.secret))).replace("{secret_dir!r}", repr(str(self.dir)))
                .replace("{port}", str(self.listener.getsockname()[1])))

    def check(self):
        assert self.snapshot() == self.before, "a file next to the test changed or appeared"
        with pytest.raises(BlockingIOError):
            self.listener.accept()
        assert not os.path.exists("/rps_pwned")
        self.listener.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_program_is_contained(case, executor, tmp_path):
    guard = HostGuard(tmp_path)
    containers = executor.container_ids()
    hostile, follow_up = executor.run([
        Program(guard.render(case.source), [GRID], [[[5]]]),
        Program(FOLLOW_UP, [FOLLOW_UP_GRID]),
    ])
    assert hostile.status == case.status, hostile.error
    assert case.error in hostile.error
    if case.outputs is not None:
        assert hostile.test_outputs == case.outputs
    assert (follow_up.status, follow_up.test_outputs) == ("ok", [FOLLOW_UP_OUTPUT]), follow_up.error
    assert executor.container_ids() == containers, "the runner's container was replaced"
    guard.check()


def test_battery_covers_the_issue_list():
    """Every hostile program the issue names has a case above."""
    names = {c.name for c in CASES}
    required = {"infinite_loop", "sleep_forever", "fork_bomb", "allocate_20_gb", "print_100_mb", "write_to_root",
                "fill_tmp", "write_host_file", "read_host_file", "connect_host_loopback", "connect_outside",
                "kill_pid_1", "sys_exit", "os_exit", "segfault_via_ctypes", "recursion_bomb", "threads_left_running",
                "monkey_patch_builtins_numpy_json", "return_generator", "return_huge_array",
                "return_self_referencing_list"}
    assert required <= names
