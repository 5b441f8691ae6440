"""Finding a program's processes through /proc: to kill what it left, and to count them."""

from __future__ import annotations

import os
import signal
import time

from . import limits

def children(of: int = 0) -> list[int]:
    """The direct children of `of` (0: us; zombies included), via /proc/<pid>/task/*/children
    when available."""
    pids: list[int] = []
    where = f"/proc/{of}" if of else "/proc/self"
    try:
        for tid in os.listdir(f"{where}/task"):
            with open(f"{where}/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        return pids
    except (OSError, ValueError):
        pass
    me = of or os.getpid()
    try:
        entries = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return pids
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if int(data[data.rindex(b")") + 2:].split()[1]) == me:
                pids.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return pids


def descendants(pid: int, found: list[int], limit: int = 4096) -> None:
    """Append `pid`'s descendants (best effort: a process may vanish while we look)."""
    stack = [pid]
    while stack and len(found) < limit:
        parent = stack.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            stack += kids


def cgroup_pids_limited() -> bool:
    """Our cgroup (a container's) has a pids limit: it bounds what programs fork, per container."""
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
        try:
            with open(path) as f:
                return f.read().strip() != "max"
        except OSError:
            continue
    return False


def count_own_tasks() -> int:
    """Processes and threads of our uid that we can see: what RLIMIT_NPROC counts against us."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, ValueError, KeyError):
            continue
    return count



def sweep(keep: set[int], zygote: int, exclusive: bool) -> str:
    """Kill and reap every process not in `keep` (the running jobs and the zygote): escaped
    grandchildren, fork bombs, daemons. As a subreaper (or PID 1) they are all ours or, if a
    program made them its siblings, the zygote's, which reaps them. '' or, when some are still
    there after every round, why the runner must retire."""
    for round_ in range(limits.SWEEP_ROUNDS):
        if exclusive:  # PID 1 of the container: every other process is a leftover
            strays = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep and p != "1"]
            doomed = strays
        else:
            strays = [pid for pid in children() + children(zygote) if pid not in keep]
            doomed = list(strays)
            for pid in strays:
                descendants(pid, doomed)
        if not strays:
            return ""
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # the zygote's (or gone): it reaps them
                pass
        if round_ >= 20:
            time.sleep(0.001)
    return (f"the program left processes ({len(strays)} in the last round) that the runner was still "
            f"killing after {limits.SWEEP_ROUNDS} rounds; the runner was replaced")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """User + system CPU time of `pids` (all their threads, ended ones included) and of the children
    they reaped: with every live process of a program listed once, what the whole program used."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            ticks += sum(map(int, data[data.rindex(b")") + 2:].split()[11:15]))  # utime stime cutime cstime
        except (OSError, ValueError):
            continue
    return ticks / _TICKS


def tree_cpu_seconds(pid: int) -> float | None:
    """cpu_seconds of `pid` and its live descendants, or None once `pid` is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        ticks = sum(map(int, data[data.rindex(b")") + 2:].split()[11:15]))
    except (OSError, ValueError):
        return None
    found: list[int] = []
    descendants(pid, found)
    return ticks / _TICKS + cpu_seconds(found)


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` itself (all its threads), without the children it reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return sum(map(int, data[data.rindex(b")") + 2:].split()[11:13])) / _TICKS
    except (OSError, ValueError):
        return 0.0


# The CPU total of our cgroup: the container's, where the runner is PID 1 of its own container.
CGROUP_CPU = (("/sys/fs/cgroup/cpu.stat", 1e-6), ("/sys/fs/cgroup/cpuacct/cpuacct.usage", 1e-9),
              ("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", 1e-9))


def cgroup_cpu_reader():
    """A function returning the CPU seconds every process of our cgroup ever used, ended ones
    included (however they were reaped), or None where no cgroup file tells it (cgroup v2
    cpu.stat's usage_usec, or v1 cpuacct.usage)."""
    for path, scale in CGROUP_CPU:
        def read(path=path, scale=scale) -> float:
            with open(path, "rb") as f:
                data = f.read()
            if path.endswith("cpu.stat"):
                data = data.split(b"usage_usec", 1)[1].split()[0]
            return int(data) * scale
        try:
            read()
        except (OSError, ValueError, IndexError):
            continue
        return read
    return None
