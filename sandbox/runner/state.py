"""What the supervisor checks after every program: its own and the zygote's process state (which a
program must not be able to change), and what a dead program may still hold (scratch space, unix
sockets carrying files). A change retires the runner (supervisor.py)."""

from __future__ import annotations

import os
import resource
import socket

def free_blocks(roots) -> list[int]:
    free = []
    for root in roots:
        try:
            free.append(os.statvfs(root).f_bfree)
        except OSError:
            free.append(0)
    return free


def count_unix_sockets() -> int:
    """Unix sockets of our network namespace (the container's, in exclusive mode)."""
    try:
        with open("/proc/net/unix", "rb") as f:
            return f.read().count(b"\n") - 1
    except OSError:
        return 0


def collect_unix_garbage() -> None:
    """Make the kernel run its unix-socket garbage collector: it runs when a unix socket is
    released while sockets are in flight, so release one with one of ours in flight."""
    try:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return
    try:
        socket.send_fds(a, [b"x"], [a.fileno()])
    except OSError:
        pass
    a.close()
    b.close()  # purges a (in flight in b's queue), released with sockets in flight: the GC runs


_RLIMITS = sorted((name, value) for name, value in vars(resource).items() if name.startswith("RLIMIT_"))


def process_state(pid: int) -> dict:
    """What a program must not be able to change in the runner's processes (pid 0: this one)."""
    where = f"/proc/{pid}" if pid else "/proc/self"
    state = {name: resource.prlimit(pid, value) for name, value in _RLIMITS}
    state["nice"] = os.getpriority(os.PRIO_PROCESS, pid)
    state["CPU affinity"] = sorted(os.sched_getaffinity(pid))
    state["scheduling policy"] = os.sched_getscheduler(pid)
    with open(f"{where}/oom_score_adj") as f:
        state["oom_score_adj"] = f.read().strip()
    with open(f"{where}/status") as f:
        state["uids"] = [line for line in f.read().splitlines() if line.startswith(("Uid:", "Gid:", "Groups:"))]
    return state

