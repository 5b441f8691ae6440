"""Fork server that runs untrusted `transform(grid)` programs, one fresh child process each.

Standard library + numpy only: this package runs inside the sandbox container (and, for the
explicitly unsafe `local` backend, on the host), started as `python3 -I <path>/runner` (the
directory; __main__.py). Three kinds of process, so that no program can reach another:

- the *supervisor* (supervisor.py; PID 1 of its container in the Docker backend) reads requests,
  enforces the time limits, collects results, kills leftovers and answers. It holds requests and
  outputs, so no program is ever forked from it.
- the *zygote* (zygote.py), forked once before the first request is read, imports numpy (and
  main.PRELOAD) and then only forks: it never holds a request, an output or a program's source.
- the *program* process (program.py): drops to the programs' uid, sets its rlimits (limits.py) and
  a seccomp filter (seccomp.py), reads its own request, execs the program and calls `transform`
  on each input, reporting each call as one JSON line (protocol.py) on fd 3.

After every program the supervisor kills every process the program left, has what it left in the
scratch directories removed (cleanup.py) and checks its own and the zygote's state (state.py); if
anything is left or changed, that program is `error` and the runner retires.

Request (stdin):  {"id": ..., "source": str, "inputs": [grid, ...], "num_tests": int, "timeout": float}
Answer (stdout):  {"id": ..., "status": "ok"|"error"|"timeout", "outputs": [value|null, ...],
                   "call_errors": [str|null, ...], "error": str}
`inputs` are the test inputs followed by the training inputs; `status` is decided by the first
`num_tests` calls only. See job.py for how an answer is decided.

Imported first, before numpy: the settings every process of the runner must share.
"""

import ctypes
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

libc = ctypes.CDLL(None, use_errno=True)
# glibc reserves a 64 MiB arena per thread (up to 8 per CPU of the host): under a program's 1 GiB
# RLIMIT_AS that allowed ~17 threads, fewer than ThreadPoolExecutor's default on a big host. Set
# before any thread exists (the limit is fixed at the first arena made), so every fork inherits it.
M_ARENA_MAX = -8
if hasattr(libc, "mallopt"):
    libc.mallopt(M_ARENA_MAX, 2)

PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 22, 36, 38


def prctl(option: int, arg: int) -> None:
    try:
        libc.prctl(option, arg, 0, 0, 0)
    except Exception:
        pass


def check(result: int, what: str) -> None:
    """Raise OSError with errno's text if a libc call returned non-zero."""
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
