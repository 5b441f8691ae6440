"""The runner's command line: parse it, warm the imports programs use, start the supervisor."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal

from . import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, prctl, seccomp
from .procs import cgroup_pids_limited, count_own_tasks
from .program import without_resource_tracker
from .supervisor import Runner

# Also warm, if present: what model programs import most. scipy.ndimage makes every fork ~1 ms
# dearer here but saves ~0.3 s for each program that imports it.
PRELOAD = ("collections", "copy", "functools", "heapq", "itertools", "math", "typing", "scipy.ndimage")


def preload(modules) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fork server that runs untrusted transform(grid) programs (see the package docstring).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs run at once")
    parser.add_argument("--timeout", type=float, default=2.0, help="default seconds per transform call")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per program")
    parser.add_argument("--fsize-mb", type=int, default=1, help="largest file a program may write")
    parser.add_argument("--nproc", type=int, default=256,
                        help="processes + threads a program may add (not enforceable for root); 0: no limit")
    parser.add_argument("--hello", action="store_true", help="write a ready line once started")
    parser.add_argument("--no-preload", action="store_true", help="import only numpy up front")
    parser.add_argument("--exclusive", action="store_true",
                        help="PID 1 of a container: every other process but the zygote is a leftover")
    parser.add_argument("--program-uid", type=int,
                        help="run programs and cleanup as this uid (the runner must be root, with SETUID/SETGID/KILL)")
    parser.add_argument("--scratch", action="append", default=[],
                        help="a writable directory whose entries owned by the programs' uid are deleted after every program")
    parser.add_argument("--cleanup-limit", type=float, default=2.0,
                        help="seconds the cleanup after a program may take; past it the program is `error` "
                             "and the runner retires")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 no in-container signal may reach us
    if args.exclusive and os.getpid() != 1:
        parser.error("--exclusive is only for a runner that is PID 1 of its own container")
    if args.program_uid is not None and (os.getuid() != 0 or args.program_uid <= 0):
        parser.error("--program-uid needs a runner started as root and a uid other than 0")
    nproc = 0
    if args.nproc > 0 and args.program_uid is not None:
        nproc = args.nproc  # the programs' uid has no other process: the previous program's are gone
    elif args.nproc > 0 and os.getuid() != 0 and (args.exclusive or not cgroup_pids_limited()):
        # RLIMIT_NPROC counts every task of our uid, so count what already runs under it (+ the zygote).
        # Not in a shared container with a pids limit (Inspect's sandbox): there every sample's
        # container runs programs as the same uid and RLIMIT_NPROC counts them all, host-wide; the
        # container's pids limit bounds what its programs fork instead.
        nproc = args.nproc + 1 + (1 if args.exclusive else count_own_tasks())
    config = {"memory": args.memory_mb << 20, "fsize": args.fsize_mb << 20, "nproc": nproc,
              "timeout": args.timeout, "uid": args.program_uid, "scratch": tuple(args.scratch),
              "exclusive": args.exclusive, "supervisor": os.getpid()}
    workers = 1 if args.exclusive else max(1, args.workers)
    if not args.no_preload:
        preload(PRELOAD)
    without_resource_tracker()
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of programs stay ours, so we can kill and reap them
    prctl(PR_SET_DUMPABLE, 0)  # same-uid programs may not ptrace us or open /proc/<us>/mem
    seccomp.prepare(fixed_sigchld=not args.exclusive)  # exclusive: the cgroup counts auto-reaped children
    # Everything imported so far (numpy, scipy, ...) out of the collector's reach: a collection in a
    # program would otherwise write to every object's header and copy most of the zygote's pages.
    gc.freeze()
    runner = Runner(workers, config, args.exclusive, args.cleanup_limit)
    runner.serve(args.hello)
    runner.zygote.sock.close()  # the zygote ends at end of input; reap it
    os.waitpid(runner.zygote.pid, 0)
