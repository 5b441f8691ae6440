"""Red team, round 4 (branch redteam-18): attacks on the rebuilt sandbox, through the real Docker
executor. Each test asserts the secure / honest behaviour.

FIXED (each test failed before the fix; sandbox.md explains how each is closed):
- test_cpu_limit_holds_for_children_reaped_by_sig_ign: a program whose children are reaped by the
  kernel (SIGCHLD ignored) uses any amount of CPU per call, up to the wall-clock backstop.
- test_cpu_limit_holds_when_the_program_lies_about_its_cpu: a program that patches the runner's
  cpu_used() in its own process moves the module-level budget into its first test call.
- test_sys_argv_is_a_scripts: an honest program sees the runner's command line in sys.argv.
- test_inspect_sandbox_next_program_not_blamed_for_a_delayed_signal: in Inspect's docker sandbox a
  program arms a SIGKILL for the runner that fires while the NEXT program runs; that one is `error`.
- test_inspect_sandbox_samples_do_not_share_a_process_limit: in Inspect's docker sandbox every
  container's programs are uid 10002, so RLIMIT_NPROC is shared host-wide between samples.

CONTAINED (passed already; kept as regression tests):
- test_docker_backend_delayed_signal_is_contained: finding 4's program in the Docker backend.
- test_cpu_of_orphans_is_counted: CPU of double-forked orphans (zombies of PID 1) is counted.
- test_kernel_socket_memory_is_charged_and_gone: ~600 MB of unix socket buffers in 5 processes.
- the follow-up programs of the tests above: nothing of the attacker is left.
"""

from __future__ import annotations

import pytest

from rps_evals.execution import Program, SandboxUnavailable, get_executor

pytestmark = pytest.mark.docker

CPU_LIMIT = 1.0  # seconds of CPU per call: small, so that the file stays fast

FOLLOW_UP = """
import os
def transform(grid):
    me = os.getuid()
    others = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/status") as f:
                    uid = int([l for l in f if l.startswith("Uid:")][0].split()[1])
            except OSError:
                continue
            if uid == me:
                others.append(int(p))
    return [[len(others), len(os.listdir("/tmp")), len(os.listdir("/dev/shm"))]]
"""


@pytest.fixture(scope="module")
def executor():
    try:
        ex = get_executor("docker", timeout=CPU_LIMIT, workers=1)
    except SandboxUnavailable as exc:
        pytest.skip(f"docker engine unavailable: {exc}")
    with ex:
        yield ex


def _run(executor, *sources, tests=([[1]],)):
    return executor.run([Program(source, list(tests)) for source in sources])


# -- FINDING 1 (fixed): CPU time of children the kernel reaps is counted nowhere ------------
# procs.cpu_seconds sums utime+stime+cutime+cstime of the live processes, and program.cpu_used the
# same from inside; a child that exits while SIGCHLD is SIG_IGN (or SA_NOCLDWAIT) is reaped by the
# kernel without adding its times to anyone's cutime. Each child also has its own RLIMIT_CPU. So a
# call may use wall backstop (10 x limit) x every core of the host, scored `ok`.
AUTOREAPED = """
import os, signal, time
def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
def transform(grid):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
    used = 0.0
    for _ in range(6):                               # 6 x 0.4 s = 2.4 s of CPU in a 1 s call
        pid = os.fork()
        if pid == 0:
            burn(0.4)
            os._exit(0)
        while True:
            try:
                os.kill(pid, 0)
                time.sleep(0.005)
            except ProcessLookupError:
                break
        used += 0.4
    return [[round(used, 1)]]
"""


def test_cpu_limit_holds_for_children_reaped_by_sig_ign(executor):
    attack, follow = _run(executor, AUTOREAPED, FOLLOW_UP)
    assert follow.status == "ok" and follow.test_outputs == [[[0, 0, 0]]], follow  # contained today
    # Before the fix: status ok, output [[2.4]]: 2.4 s of CPU in a call limited to 1 s.
    assert attack.status == "timeout", (attack.status, attack.test_outputs, attack.error)


# -- FINDING 2 (fixed): the call's CPU budget starts at the CPU total the program reports ---
# job.on_result_bytes takes the "loaded"/"cpu" value of each result line as the start of the next
# call's budget (only checking it is not over the limit). The program runs in the same process as
# runner.program and can replace cpu_used(): reporting the module-level code as having used ~the
# whole limit (it used ~0) gives the first test call two limits of real CPU (more with more calls
# before it), in one process, no fork.
LYING = """
import sys, time
rp = next(m for n, m in list(sys.modules.items()) if n.endswith(".program") and hasattr(m, "cpu_used"))
_real, _last = rp.cpu_used, [0.0]
def _lying():
    value = max(_real(), _last[0] + 0.95)   # as much as the supervisor accepts
    _last[0] = value
    return value
rp.cpu_used = _lying
def transform(grid):
    start = time.process_time()
    while time.process_time() - start < 1.7:   # 1.7 s of CPU in a 1 s call
        pass
    return [[1]]
"""


def test_cpu_limit_holds_when_the_program_lies_about_its_cpu(executor):
    attack, follow = _run(executor, LYING, FOLLOW_UP)
    assert follow.status == "ok" and follow.test_outputs == [[[0, 0, 0]]], follow
    # Before the fix: status ok. Fix: start the next call's budget at min(reported, measured from /proc).
    assert attack.status == "timeout", (attack.status, attack.test_outputs, attack.error)


# -- FINDING 3 (fixed): sys.argv is the runner's command line -----------------------------
# Under `python3 program.py` sys.argv == ["program.py"]; in the sandbox (both backends) it is
# ["/opt/rps/runner", "--workers", "1", "--timeout", ..., "--program-uid", "<uid>", ...], so an
# honest program with an optional command-line argument is scored `error`. Fix: program.as_a_script
# sets sys.argv = [PROGRAM_FILE] (it also leaks the programs' uid and the runner's options).
ARGV = """
import sys, json
if len(sys.argv) > 1:            # optional input file, as in a script
    EXTRA = json.load(open(sys.argv[1]))
def transform(grid):
    return [[len(sys.argv)]]
"""


def test_sys_argv_is_a_scripts(executor):
    (result,) = _run(executor, ARGV)
    # Before the fix: error, FileNotFoundError: '--workers'
    assert result.status == "ok", result.error
    assert result.test_outputs == [[[1]]]


# -- CONTAINED: kernel memory of unix socket buffers is charged to the container -----------------
KERNEL_MEMORY = """
import os, socket, time
def usage():
    with open("/sys/fs/cgroup/memory/memory.usage_in_bytes") as f:
        return int(f.read()) >> 20
def transform(grid):
    try:
        before = usage()
    except OSError:
        return [[-1, 0]]   # no cgroup v1 memory controller in this container
    r, w = os.pipe()
    for _ in range(5):
        if os.fork() == 0:
            os.close(r)
            held, total = [], 0
            try:
                for _ in range(480):
                    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                    a.setblocking(False)
                    try:
                        while True:
                            total += a.send(b"x" * 65000)
                    except OSError:
                        pass
                    held.append((a, b))
            except OSError:
                pass
            os.write(w, b"%d\\n" % total)
            time.sleep(30)
            os._exit(0)
    os.close(w)
    data = b""
    while data.count(b"\\n") < 5:
        chunk = os.read(r, 100)
        if not chunk:
            break
        data += chunk
    queued = sum(int(x) for x in data.split()) >> 20
    return [[int(usage() - before >= queued // 2), queued]]
"""


def test_kernel_socket_memory_is_charged_and_gone(executor):
    attack, follow = _run(executor, KERNEL_MEMORY, FOLLOW_UP)
    assert attack.status == "ok", attack.error
    if attack.test_outputs[0][0][0] == -1:
        pytest.skip("the container has no cgroup v1 memory.usage_in_bytes to check the charge with")
    assert attack.test_outputs[0][0][0] == 1, attack.test_outputs  # charged to the container
    assert follow.status == "ok" and follow.test_outputs == [[[0, 0, 0]]], follow


# -- FINDING 4 (fixed): Inspect's docker sandbox, a delayed signal blames the NEXT program ---
# There (sandbox/compose.yaml, rps_evals/inspect_eval/sandbox.py) the runner and its programs share
# uid 10002 and the runner is not --exclusive: no SCM_RIGHTS garbage is collected after a program.
# A program arms an inotify fd on /dev/null with O_ASYNC, F_SETOWN = the runner, F_SETSIG = SIGKILL,
# and parks it in an SCM_RIGHTS cycle of two bound sockets, so it outlives the program and the sweep.
# The next program's process opens /dev/null at start (program.program_main): the runner is killed
# while that honest program runs, and run_in_inspect_sandbox blames the first unanswered program:
# the honest one is `error`; the attacker was answered `ok`. (The Docker backend is immune: the
# runner is root and another uid, so sigio_perm refuses the signal; the cycle is also collected.)
DELAYED_KILL = r'''
import ctypes, fcntl, os, signal, socket
def transform(grid):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    libc.inotify_add_watch(fd, b"/dev/null", 0x20)          # IN_OPEN
    with open(f"/proc/{os.getppid()}/stat") as f:            # the zygote's parent: the runner
        runner = int(f.read().rsplit(")", 1)[1].split()[1])
    fcntl.fcntl(fd, fcntl.F_SETOWN, runner)
    fcntl.fcntl(fd, 10, signal.SIGKILL)                       # F_SETSIG
    fcntl.fcntl(fd, fcntl.F_SETFL, os.O_ASYNC)
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a.bind("\0rt-a")
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); b.bind("\0rt-b")
    a.connect("\0rt-b"); b.connect("\0rt-a")
    socket.send_fds(a, [b"x"], [fd, a.fileno()])              # a cycle: alive after we die
    socket.send_fds(b, [b"y"], [b.fileno()])
    os.close(fd); a.close(); b.close()
    return grid
'''
HONEST = "def transform(grid):\n    return [[x + 1 for x in row] for row in grid]\n"


def test_inspect_sandbox_next_program_not_blamed_for_a_delayed_signal():
    import asyncio
    import subprocess
    import sys
    import types

    pytest.importorskip("inspect_ai")
    from rps_evals.inspect_eval import sandbox as inspect_sandbox
    try:
        from rps_evals.execution.image import docker_client, sandbox_image
        docker_client(timeout=30)
        image = sandbox_image()
    except SandboxUnavailable as exc:
        pytest.skip(f"docker engine unavailable: {exc}")

    class ComposeLikeSandbox:
        """What sandbox/compose.yaml gives (a fresh container per exec is enough here)."""

        async def exec(self, cmd, input=None, timeout=None, user=None):
            docker = ["docker", "run", "-i", "--rm", "--user", user or "10002:10002", "--network", "none",
                      "--read-only", "--init", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                      "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=64m,nr_inodes=4096,mode=1777",
                      "--tmpfs", "/dev/shm:rw,nosuid,nodev,noexec,size=8m,nr_inodes=1024,mode=1777",
                      "--ipc", "private", "--memory", "1280m", "--memory-swap", "1280m",
                      "--pids-limit", "512", "--workdir", "/tmp", image, *cmd]
            done = subprocess.run(docker, input=input, capture_output=True, text=True, timeout=timeout)
            return ExecResult(done.returncode == 0, done.returncode, done.stdout, done.stderr)

    from inspect_ai.util import ExecResult

    fake = ComposeLikeSandbox()
    util = types.SimpleNamespace(sandbox=lambda *a: fake, OutputLimitExceededError=type("E", (Exception,), {}))
    real_util = sys.modules["inspect_ai.util"]
    sys.modules["inspect_ai.util"] = util
    try:
        programs = [Program(DELAYED_KILL, [[[1, 2]]]), Program(HONEST, [[[1, 2]]]), Program(HONEST, [[[3]]])]
        results = asyncio.run(inspect_sandbox.run_in_inspect_sandbox(programs, 2.0, user="10002:10002"))
    finally:
        sys.modules["inspect_ai.util"] = real_util
    # Before the fix: [ok, error ("the sandbox runner exited with code 137"), ok].
    assert results[1].status == "ok", (results[1].status, results[1].error)
    assert results[1].test_outputs == [[[2, 3]]]
    assert results[2].status == "ok"


# -- FINDING 5 (fixed): Inspect's docker sandbox, RLIMIT_NPROC is shared by every sample -----
# Every Inspect sandbox container runs its runner and programs as uid 10002 (compose.yaml,
# PROGRAM_USER), in the host's user namespace. RLIMIT_NPROC counts the tasks of a uid host-wide,
# and main.py sets it to 256 + the tasks it sees in its own container. So a program of one sample
# holding ~255 processes (or Pool(64)s of several samples at once) makes fork and thread creation
# fail in every other sample's container: an honest ThreadPoolExecutor(4) is `error`, "can't start
# new thread". (The Docker backend draws a random uid per container and is not affected.)
HOG = """
import os, time
def transform(grid):
    n = 0
    for _ in range(300):
        try:
            if os.fork() == 0:
                time.sleep(8)
                os._exit(0)
            n += 1
        except OSError:
            break
    time.sleep(8)
    return [[n]]
"""
THREADS = """
from concurrent.futures import ThreadPoolExecutor
def f(x):
    return x + 1
def transform(grid):
    with ThreadPoolExecutor(4) as ex:
        return [list(ex.map(f, row)) for row in grid]
"""


def test_inspect_sandbox_samples_do_not_share_a_process_limit():
    import json
    import subprocess
    import time

    from rps_evals.execution.protocol import RUNNER_IN_IMAGE, runner_command
    from rps_evals.inspect_eval.sandbox import PROGRAM_USER
    try:
        from rps_evals.execution.image import docker_client, sandbox_image
        docker_client(timeout=30)
        image = sandbox_image()
    except SandboxUnavailable as exc:
        pytest.skip(f"docker engine unavailable: {exc}")
    command = runner_command(RUNNER_IN_IMAGE, timeout=2.0, memory_mb=1024) + [
        "--scratch", "/tmp", "--scratch", "/dev/shm"]  # as run_in_inspect_sandbox builds it
    docker = ["docker", "run", "-i", "--rm", "--user", PROGRAM_USER, "--network", "none", "--read-only",
              "--init", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
              "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=64m,mode=1777", "--memory", "1280m",
              "--pids-limit", "512", image, *command]

    def request(source):
        return json.dumps({"id": 0, "source": source, "inputs": [[[1, 2]]], "num_tests": 1, "timeout": 2.0}) + "\n"

    hog = subprocess.Popen(docker, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        hog.stdin.write(request(HOG))
        hog.stdin.close()
        time.sleep(4)  # the other sample's program holds its processes now
        honest = subprocess.run(docker, input=request(THREADS), capture_output=True, text=True, timeout=60)
    finally:
        hog.wait(timeout=60)
    answer = json.loads(honest.stdout.splitlines()[-1])
    # Before the fix: error, RuntimeError: can't start new thread
    assert answer["status"] == "ok", answer["error"][-300:]
    assert answer["outputs"] == [[[2, 3]]]


# -- CONTAINED in the Docker backend: the same delayed signal, and orphans' CPU -------------------
LOOK = """
def transform(grid):
    with open("/proc/net/unix") as f:
        data = f.read()
    return [[data.count("\\n") - 1, int("rt-a" in data)]]
"""


def test_docker_backend_delayed_signal_is_contained(executor):
    attack, first, second = _run(executor, DELAYED_KILL, LOOK, LOOK)
    assert attack.status == "ok"  # SIGKILL to a root runner from another uid is refused at delivery
    assert first.status == "ok" and first.test_outputs == [[[2, 0]]], first  # the cycle was collected
    assert second.status == "ok" and second.test_outputs == [[[2, 0]]], second


ORPHANS = """
import os, time
def transform(grid):
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:            # an orphan of the runner once its parent exits
                start = time.process_time()
                while time.process_time() - start < 0.4:
                    pass
                os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.5)
    return [[1]]
"""


def test_cpu_of_orphans_is_counted(executor):
    (result,) = _run(executor, ORPHANS)
    assert result.status == "timeout", (result.status, result.error)
