"""The hostile-program battery (issues 3 and 9), against the real Docker sandbox.

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
from sandbox_programs import honest_and_thief
from rps_evals.execution import Program
from rps_evals.execution.docker import DockerExecutor

pytestmark = pytest.mark.docker

TIMEOUT = 2.0  # the default; generous so that a loaded CI machine does not turn errors into timeouts
GRID = [[1, 2], [3, 4]]

FOLLOW_UP = """
import builtins, json, os
import numpy as np

def transform(grid):
    me, uid = os.getpid(), os.getuid()
    mine = others = 0
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me:
            try:
                with open(f"/proc/{p}/status") as f:
                    owner = int([line for line in f if line.startswith("Uid:")][0].split()[1])
            except (OSError, IndexError):
                continue
            mine += owner == uid
            others += owner != uid
    left = os.listdir("/tmp") + os.listdir("/dev/shm") + os.listdir("/dev/mqueue")
    for kind in ("shm", "sem", "msg"):
        with open(f"/proc/sysvipc/{kind}") as f:
            left += f.read().splitlines()[1:]
    for kind in ("tcp", "tcp6", "udp", "udp6"):  # e.g. TIME_WAIT sockets: a channel to later programs
        with open(f"/proc/net/{kind}") as f:
            left += f.read().splitlines()[1:]
    with open("/proc/net/unix") as f:  # beyond the runner's 2 (its zygote's socketpair): e.g. an SCM_RIGHTS cycle
        left += f.read().splitlines()[3:]
    for root in ("/tmp", "/dev/shm"):  # space still held, e.g. by unlinked files in flight
        st = os.statvfs(root)
        left += ["space held in " + root] * (st.f_bfree != st.f_blocks)
    sane = (np.rot90(np.array([[1, 2]])).tolist() == [[2], [1]] and len([1, 2, 3]) == 3
            and sorted([3, 1]) == [1, 3] and callable(print) and json.dumps([1]) == "[1]"
            and not hasattr(builtins, "poisoned"))
    return [[mine, len(left), int(sane), others]] + [list(r) for r in grid]
"""
FOLLOW_UP_GRID = [[4, 5]]
# no other process of the programs' uid (zombies included), nothing left (files, IPC objects,
# inet sockets), a sane interpreter,
# and two processes of another uid: the runner (PID 1) and its zygote
FOLLOW_UP_OUTPUT = [[0, 0, 1, 2], [4, 5]]


@dataclass(frozen=True)
class Hostile:
    name: str
    source: str  # {secret!r}, {secret_dir!r} and {port} are filled in from the host guard
    status: str
    error: str = ""  # a substring the error must contain
    outputs: list | None = None  # exact test outputs, where the program returns


EVERY_CHANGE = """
me, hits = os.getpid(), 0
attempts = [lambda p: resource.prlimit(p, resource.RLIMIT_FSIZE, (0, 0)),
            lambda p: resource.prlimit(p, resource.RLIMIT_NPROC, (1, 1)),
            lambda p: os.setpriority(os.PRIO_PROCESS, p, 19),
            lambda p: os.sched_setaffinity(p, {0}),
            lambda p: os.sched_setscheduler(p, os.SCHED_IDLE, os.sched_param(0)),
            lambda p: open(f"/proc/{p}/oom_score_adj", "w").write("-1000"),
            lambda p: os.kill(p, signal.SIGSTOP)]
for p in [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]:
    for attempt in attempts:
        try:
            attempt(p)
            hits += 1
        except OSError:
            pass
return [[hits]]
"""
LOWER_OOM_SCORE = """
made_dumpable = ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)
try:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("0")
    lowered = 1
except OSError:
    lowered = 0
try:  # an exec'd binary would be dumpable again
    os.execv(sys.executable, [sys.executable, "-c", "open('/proc/self/oom_score_adj', 'w').write('0')"])
except OSError:
    execed = 0
for _ in range(5):  # then fill the container: the kernel must pick these, never the runner
    if os.fork() == 0:
        x = bytearray(400 * 2**20)
        time.sleep(1e9)
time.sleep(1)
return [[made_dumpable, lowered, execed]]
"""
MANY_FILES = """
made = []
for root in ("/tmp", "/dev/shm"):
    n = 0
    try:
        while n < 150_000:
            open(f"{root}/f{n}", "w").close()
            n += 1
    except OSError:
        pass
    made.append(int(n < 150_000))  # the file systems hold only a few thousand inodes
return [made]
"""
SPECIAL_FILES = """
for root in ("/tmp", "/dev/shm"):
    os.mkfifo(f"{root}/fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{root}/sock")
    s.listen(1)
    os.symlink(f"{root}/loop", f"{root}/loop")
    os.symlink("/", f"{root}/root")
    os.mkdir(f"{root}/dir")
    os.mkfifo(f"{root}/dir/fifo")
return grid
"""
IPC_LEFT = """
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(0, 4096, 0o1000 | 0o600) >= 0  # IPC_PRIVATE, IPC_CREAT
assert libc.semget(0, 1, 0o1000 | 0o600) >= 0
assert libc.msgget(0, 0o1000 | 0o600) >= 0
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
assert libc.mq_open(b"/left", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0
return grid
"""


CLONE_PARENT_ZOMBIES = """
libc = ctypes.CDLL(None, use_errno=True)
made = 0
for _ in range(100):  # raw clone(CLONE_PARENT | SIGCHLD): each child would be the zygote's
    pid = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid < 0:
        break
    made += 1
return [[made, ctypes.get_errno()]]
"""
CLONE3 = """
libc = ctypes.CDLL(None, use_errno=True)
return [[libc.syscall(435, 0, 0), ctypes.get_errno()]]
"""
THREADS_AND_FORK = """
out = []
threads = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    doubled = list(pool.map(lambda v: 2 * v, [1, 2, 3]))
a, b = socket.socketpair()  # AF_UNIX stays allowed (multiprocessing.Pipe uses it)
a.send(b"x")
return [[sorted(out) == list(range(8)), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), *doubled, len(b.recv(1))]]
"""
TCP_TIME_WAIT = """
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
for i, v in enumerate(v for row in grid for v in row):  # the input, in the ports of TIME_WAIT sockets
    c = socket.socket()
    c.bind(("127.0.0.1", 50000 + 16 * i + v))
    c.connect(server.getsockname())
    a, _ = server.accept()
    c.close()
    a.close()
return grid
"""
LISTENER_IN_FD_CYCLE = """
listener = socket.socket()
listener.bind(("127.0.0.1", 47777))
listener.listen(4)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
fds = array.array("i", [listener.fileno(), a.fileno(), b.fileno()])
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
b.sendmsg([b"y"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
return grid
"""
# Red team round 2: dead programs' unlinked files and memfds, kept in flight in an SCM_RIGHTS cycle,
# held 48 MiB of the 64 MiB /tmp (or of the container's memory) until the kernel's unix garbage
# collector ran ~1.5 s later. The runner now triggers it; the follow-up finds /tmp's space free.
HELD_IN_AN_SCM_RIGHTS_CYCLE = """
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
fds = []
for k in range(48):
    fd = os.memfd_create("x") if MEMFD else os.open(f"/tmp/f{k}", os.O_CREAT | os.O_RDWR)
    os.write(fd, b"x" * (1 << 20))
    if not MEMFD:
        os.unlink(f"/tmp/f{k}")
    fds.append(fd)
for k in range(0, 48, 8):
    socket.send_fds(a, [b"x"], fds[k:k + 8])
socket.send_fds(a, [b"y"], [a.fileno(), b.fileno()])
return [[os.statvfs("/tmp").f_bfree * os.statvfs("/tmp").f_frsize >> 20]]
"""
# Honest programs that failed in the runner's old plain-dict namespace (red team round 2): the
# program is now a real module in sys.modules, under the __name__ it always had.
# inspect.getsource and __file__ of a program's own code (red team round 3); 2 = "def transform" is
# found in its own source, 1 = __file__ names the program
OWN_SOURCE = """import inspect

def transform(grid):
    return [[2 if "def transform" in inspect.getsource(transform) else 0, int(__file__ == "<program>")]]
"""

DATACLASSES = """from __future__ import annotations
import sys
from dataclasses import dataclass

@dataclass
class Cell:
    color: int

@dataclass(frozen=True, slots=True)
class Point:
    r: int
    c: int

def transform(grid):
    return [[Cell(grid[0][0]).color, Point(1, 2).c, int(sys.modules[__name__].Cell is Cell)]]

if __name__ == "__main__":
    raise SystemExit("the program ran as __main__")
"""
PROCESS_POOLS = """import multiprocessing
from concurrent.futures import ProcessPoolExecutor

def square(x):
    return x * x

def transform(grid):
    with multiprocessing.Pool(2) as pool:
        rows = [pool.map(square, row) for row in grid]
    with ProcessPoolExecutor(2) as ex:
        rows += [list(ex.map(square, row)) for row in grid]
    return rows
"""
# Under RLIMIT_AS (1 GiB) glibc's 64 MiB malloc arena per thread allowed ~17 threads: 24 workers (the
# ThreadPoolExecutor default on a 20-CPU host) failed. The runner limits arenas to 2.
THREADS_24 = """import threading
import numpy as np
from concurrent.futures import ThreadPoolExecutor

barrier = threading.Barrier(24)

def work(i):
    parts = [np.arange(100) * i for _ in range(200)]  # each thread's first allocations (its arena)
    barrier.wait(timeout=10)  # all 24 threads alive at once
    return int(sum(int(p.sum()) for p in parts))

def transform(grid):
    with ThreadPoolExecutor(max_workers=24) as ex:
        sums = list(ex.map(work, range(24)))
    return [[len(sums), sums[1], sums[23]]]
"""

NETLINK_AND_PACKET = """
refused = []
for family, kind in ((socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),
                     (socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)):
    try:
        socket.socket(family, kind).close()
    except OSError as exc:
        refused.append(exc.errno)
return [refused]
"""


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
    # the runner is another uid: no signal reaches it (issue 9)
    Hostile("kill_pid_1", _fn("os.kill(1, signal.SIGKILL)\nreturn grid", "import os, signal"),
            "error", "Operation not permitted"),
    Hostile("kill_the_parent", _fn("os.kill(os.getppid(), signal.SIGKILL)\nreturn grid", "import os, signal"),
            "error", "Operation not permitted"),
    Hostile("stop_pid_1", _fn("os.kill(1, signal.SIGSTOP)\nreturn grid", "import os, signal"),
            "error", "Operation not permitted"),
    Hostile("ptrace_the_runner", _fn("return [[ctypes.CDLL(None).ptrace(16, 1, 0, 0)]]", "import ctypes"),
            "ok", outputs=[[[-1]]]),
    # siblings the zygote would have to reap: seccomp refuses CLONE_PARENT (EPERM) and clone3
    # (ENOSYS: libc falls back to clone, whose flags seccomp can see); threads and fork still work
    Hostile("clone_parent_zombies", _fn(CLONE_PARENT_ZOMBIES, "import ctypes, os"), "ok", outputs=[[[0, 1]]]),
    Hostile("clone3_is_refused", _fn(CLONE3, "import ctypes"), "ok", outputs=[[[-1, 38]]]),
    Hostile("honest_threads_and_fork_still_work", _fn(THREADS_AND_FORK, "import concurrent.futures, os, socket, threading"),
            "ok", outputs=[[[True, 7, 2, 4, 6, 1]]]),
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
    Hostile("overwrite_the_runner", _fn("open('/opt/rps/runner/main.py', 'a').write('x')\nreturn grid"),
            "error", "Permission denied"),  # root's file on a read-only root
    Hostile("fill_tmp", _fn("for i in range(1000):\n    with open(f'/tmp/f{i}', 'wb') as f:\n"
                            "        f.write(b'x' * (1 << 20))"), "error", "No space left on device"),
    Hostile("file_past_size_limit", _fn("open('/tmp/big', 'wb').write(b'x' * (2 << 20))"), "error", "File too large"),
    Hostile("write_host_file", _fn("open({secret!r}, 'w').write('pwned')\nreturn grid"), "error", "No such file"),
    Hostile("read_host_file", _fn("return [[len(open({secret!r}).read())]]"), "error", "No such file"),
    Hostile("list_host_dir", _fn("return [[len(os.listdir({secret_dir!r}))]]", "import os"), "error", "No such file"),
    Hostile("read_runner_environ", _fn("return [[len(open('/proc/1/environ').read())]]"), "error", "Permission denied"),
    # network: none in the container, and no inet, netlink or packet socket for programs (red team)
    Hostile("connect_host_loopback", _fn("socket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn grid",
                                         "import socket"), "error", "Address family not supported"),
    Hostile("connect_outside", _fn("socket.create_connection(('192.0.2.1', 80), timeout=1)\nreturn grid",
                                   "import socket"), "error", "Address family not supported"),
    Hostile("tcp_time_wait_covert_channel", _fn(TCP_TIME_WAIT, "import socket"), "error",
            "Address family not supported"),
    Hostile("listener_kept_alive_in_an_scm_rights_cycle", _fn(LISTENER_IN_FD_CYCLE, "import array, socket"),
            "error", "Address family not supported"),
    Hostile("netlink_and_packet_sockets", _fn(NETLINK_AND_PACKET, "import socket"), "ok", outputs=[[[97] * 4]]),
    Hostile("resolve_a_name", _fn("socket.getaddrinfo('example.com', 80)\nreturn grid", "import socket"),
            "error", "gaierror"),
    Hostile("unlinked_tmp_files_in_an_scm_rights_cycle",
            _fn(HELD_IN_AN_SCM_RIGHTS_CYCLE, "import os, socket\nMEMFD = False"),
            "ok", outputs=[[[16]]]),  # 64 MiB less the 48 it holds
    Hostile("memfds_in_an_scm_rights_cycle",
            _fn(HELD_IN_AN_SCM_RIGHTS_CYCLE, "import os, socket\nMEMFD = True"),
            "ok", outputs=[[[64]]]),
    # honest programs that must work (red team round 2)
    Hostile("honest_dataclasses_and_sys_modules", DATACLASSES, "ok", outputs=[[[1, 2, 1]]]),
    Hostile("honest_process_pools_of_a_program_function", PROCESS_POOLS, "ok", outputs=[[[1, 4], [9, 16]] * 2]),
    Hostile("honest_24_threads_with_numpy", THREADS_24, "ok", outputs=[[[24, 990_000, 22_770_000]]]),
    Hostile("honest_getsource_and_file_of_its_own_code", OWN_SOURCE, "ok", outputs=[[[2, 1]]]),
    # poisoning later programs
    Hostile("monkey_patch_builtins_numpy_json",
            _fn("builtins.sorted = lambda *a, **k: []\nbuiltins.print = None\nbuiltins.poisoned = True\n"
                "np.rot90 = lambda *a, **k: 0\nnp.array = lambda *a, **k: 0\njson.dumps = lambda *a, **k: 'x'\n"
                "return grid", "import builtins, json\nimport numpy as np"), "ok", outputs=[GRID]),
    # sabotage of every later program through the runner's own state (issue 9)
    Hostile("prlimit_fsize_of_the_runner", _fn("resource.prlimit(1, resource.RLIMIT_FSIZE, (0, 0))\nreturn grid",
                                               "import resource"), "error", "Operation not permitted"),
    Hostile("prlimit_nproc_of_the_runner", _fn("resource.prlimit(1, resource.RLIMIT_NPROC, (1, 1))\nreturn grid",
                                               "import resource"), "error", "Operation not permitted"),
    Hostile("renice_the_runner", _fn("os.setpriority(os.PRIO_PROCESS, 1, 19)\nreturn grid", "import os"),
            "error", "Operation not permitted"),
    Hostile("pin_the_runner_to_one_cpu", _fn("os.sched_setaffinity(1, {0})\nreturn grid", "import os"),
            "error", "Operation not permitted"),
    Hostile("sched_idle_for_the_runner", _fn("os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0))\nreturn grid",
                                             "import os"), "error", "Operation not permitted"),
    Hostile("every_change_to_every_other_process", _fn(EVERY_CHANGE, "import os, resource, signal"), "ok", outputs=[[[0]]]),
    Hostile("lower_own_oom_score_adj_then_exhaust_memory", _fn(LOWER_OOM_SCORE, "import ctypes, os, sys, time"),
            "ok", outputs=[[[-1, 0, 0]]]),
    # bytes on the result channel that once crashed the runner (issue 9)
    Hostile("result_line_with_nan", _fn("os.write(3, b'{\"i\": 0, \"out\": NaN}\\n')\nreturn grid", "import os"),
            "error", "result channel"),
    Hostile("result_line_with_1e999", _fn("os.write(3, b'{\"i\": 0, \"out\": [[1e999]]}\\n')\nreturn grid", "import os"),
            "error", "result channel"),
    Hostile("result_line_nested_100000_deep", _fn("os.write(3, b'[' * 100_000 + b'\\n')\nreturn grid", "import os"),
            "error", "result channel"),
    Hostile("result_line_invalid_utf8", _fn("os.write(3, b'\\xff\\xfe{\"i\": 0}\\n')\nreturn grid", "import os"),
            "error", "result channel"),
    Hostile("result_line_huge_number", _fn("os.write(3, b'{\"i\": 0, \"out\": ' + b'9' * 100_000 + b'}\\n')\nreturn grid",
                                            "import os"), "error", "result channel"),
    Hostile("result_channel_gigabyte", _fn("for _ in range(1024):\n    os.write(3, b'x' * (1 << 20))\nreturn grid",
                                           "import os"), "error", "too much to the runner's result channel"),
    Hostile("invalid_utf8_on_stdout_and_stderr", _fn("os.write(1, b'\\xff\\xfe' * 1000)\nos.write(2, b'\\x80' * 1000)\n"
                                                     "return grid", "import os"), "ok", outputs=[GRID]),
    # what a program leaves for the cleanup (issue 9)
    Hostile("tmp_dirs_with_mode_000", _fn("os.makedirs('/tmp/a/b/c')\nopen('/tmp/a/b/c/f', 'w').close()\n"
                                          "for d in ('/tmp/a/b/c', '/tmp/a/b', '/tmp/a'):\n    os.chmod(d, 0)\n"
                                          "os.mkdir('/dev/shm/x', 0)\nreturn grid", "import os"), "ok", outputs=[GRID]),
    Hostile("tmp_tree_3000_deep", _fn("os.chdir('/tmp')\nfor _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\n"
                                      "open('leaf', 'w').close()\nreturn grid", "import os"), "ok", outputs=[GRID]),
    Hostile("tmp_150000_files", _fn(MANY_FILES, "import os"), "ok", outputs=[[[1, 1]]]),
    Hostile("fifos_sockets_and_symlink_loops_left", _fn(SPECIAL_FILES, "import os, socket"), "ok", outputs=[GRID]),
    Hostile("sysv_and_posix_ipc_left", _fn(IPC_LEFT, "import ctypes, os"), "ok", outputs=[GRID]),
    Hostile("source_of_20_mb", "# " + "x" * 20_000_000 + "\ndef transform(grid):\n    return grid\n",
            "error", "characters long"),
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


def test_a_program_finds_nothing_of_the_program_before_it(executor):
    """Item 2 of issue 9: the frames above a program, gc and its own memory hold nothing of the
    earlier program (its source, its inputs, its answer), so a thief cannot score its answer."""
    marker, answer = "rps-secret-" + os.urandom(6).hex(), 700_000 + int.from_bytes(os.urandom(2), "big")
    honest, thief = honest_and_thief(marker, answer)
    containers = executor.container_ids()
    first, stolen, follow_up = executor.run([Program(honest, [GRID]), Program(thief, [GRID]),
                                             Program(FOLLOW_UP, [FOLLOW_UP_GRID])])
    assert (first.status, first.test_outputs) == ("ok", [[[answer]]])
    # -1: it may not even read its own memory (non-dumpable, another uid than /proc/self/mem's owner)
    assert (stolen.status, stolen.test_outputs) == ("ok", [[[0, 0, -1]]]), stolen.error
    assert (follow_up.status, follow_up.test_outputs) == ("ok", [FOLLOW_UP_OUTPUT]), follow_up.error
    assert executor.container_ids() == containers


def test_megabyte_requests_and_answers_never_deadlock():
    """Item 4 of issue 9: a ~7 MB request queued behind a program that answers ~7 MB at once, on one
    container: the runner writes its answer while the request is still being sent, and since reading
    answers never waits on sending requests, every program finishes."""
    image = require_image()
    big_answer = Program("def transform(grid):\n    return 'y' * 900_000\n", [[[0]]] * 8)  # ~7 MB back, at once
    big_request = Program("def transform(grid):\n    return [[len(grid[0])]]\n", [[[0] * 300_000]] * 8)  # ~7 MB sent
    with DockerExecutor(timeout=10.0, workers=1, depth=2, image=image) as ex:
        futures = [ex.submit(p) for p in [big_answer, big_request] * 3]
        results = [f.result(timeout=300) for f in futures]
    assert [(r.status, r.test_outputs) for r in results] == [("ok", ["y" * 900_000] * 8), ("ok", [[[300_000]]] * 8)] * 3


def test_the_runner_keeps_only_the_capabilities_it_needs_and_programs_none(executor):
    """Item 1 of issue 9: a program runs as the containers' own unprivileged uid, not the runner's
    (root, PID 1), with no capability, no_new_privs, the seccomp filter and oom_score_adj 1000."""
    source = _fn("""
fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
caps = [int(fields[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")]
runner = [line for line in open("/proc/1/status") if line.startswith("Uid:")][0].split()[1]
return [[os.getuid(), os.getgid(), int(runner), *caps, int(fields["NoNewPrivs"]), int(fields["Seccomp"]),
         int(open("/proc/self/oom_score_adj").read())]]
""", "import os")
    [result] = executor.run([Program(source, [GRID])])
    uid, gid, *rest = result.test_outputs[0][0]
    assert uid >= 100_000 and gid == uid
    assert rest == [0, 0, 0, 0, 0, 1, 2, 1000]


ECHO = "def transform(grid):\n    return grid\n"
OVER_64_MIB = [[[7] * 1000] * 1000] * 23  # 23 x 3 MB of JSON: past the runner's 64 MiB request limit


@pytest.mark.parametrize("program, why", [
    (Program(ECHO, [[[float("nan")]]]), "strict JSON"),
    (Program(ECHO, [GRID], [[[float("inf")]]]), "strict JSON"),
    (Program(ECHO, [GRID], OVER_64_MIB), "at most 67108864"),
], ids=["nan_in_a_test_input", "infinity_in_a_train_input", "request_over_64_mib"])
def test_a_request_the_runner_would_refuse_is_an_error_never_a_hang(program, why, executor):
    """Red team after issue 9: these got a `bad request` answer with id null, which the host
    dropped; two of them filled the container's depth and the run hung. Now they are refused before
    sending, and the next program runs on the same container."""
    containers = executor.container_ids()
    refused, follow_up = [f.result(timeout=60) for f in (executor.submit(program),
                                                          executor.submit(Program(FOLLOW_UP, [FOLLOW_UP_GRID])))]
    assert refused.status == "error" and why in refused.error
    assert refused.test_outputs == [None] * len(program.test_inputs)
    assert (follow_up.status, follow_up.test_outputs) == ("ok", [FOLLOW_UP_OUTPUT]), follow_up.error
    assert executor.container_ids() == containers


def test_an_answer_without_id_resolves_the_oldest_request_of_its_container(executor):
    """Defence in depth: a line the runner cannot read (the host never sends one) is answered with
    id null; it resolves the oldest request outstanding on that container, so none waits forever."""
    from concurrent.futures import Future

    from rps_evals.execution.docker import _Item

    containers = executor.container_ids()
    unreadable = Future()
    with executor._lock:
        executor._queue.append(_Item(-1, unreadable, Program(ECHO, [GRID]), b"not json\n"))
        executor._pump()
    result = unreadable.result(timeout=60)
    assert result.status == "error" and "bad request" in result.error
    [follow_up] = executor.run([Program(FOLLOW_UP, [FOLLOW_UP_GRID])])
    assert (follow_up.status, follow_up.test_outputs) == ("ok", [FOLLOW_UP_OUTPUT]), follow_up.error
    assert executor.container_ids() == containers
