"""The program process, forked from the zygote: it drops to a program's rights, reads its own
request, execs the program and calls `transform` on each input, one JSON line per call on fd 3.

With a program uid (the runner is root with only SETUID, SETGID and KILL) it sets oom_score_adj
1000 while it may, drops to that uid (no capabilities), sets no_new_privs, its own rlimits and the
seccomp filter (seccomp.py).
"""

from __future__ import annotations

import fcntl
import linecache
import os
import resource
import signal
import sys
import traceback
import types

from . import PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, check, libc, prctl, seccomp
from .limits import MAX_OUTPUT_JSON, NOFILE, request_timeout
from .procs import cpu_seconds, descendants
from .protocol import (DUMPS, EXIT, LOADS, REQUEST_FD, RESULT_FD, WRITE, CallFailed, OutputTooLarge,
                       flush_prints, np, tail, to_jsonable, write_line)

PROGRAM_FILE = "<program>"  # the program's __file__ and its name in tracebacks
PROGRAM_MODULE = "__rps_program__"  # the program's __name__ (so `if __name__ == "__main__"` blocks never run)
_TIMES = os.times
_forked = []  # not empty once the program forked: its children's CPU counts too


def cpu_used() -> float:
    """CPU seconds this program used so far: this process (all threads), the children it reaped and,
    once it forked, its live descendants. Sent with every result line: the supervisor counts a
    call's CPU from there (a program that lies only gets more time, up to the wall backstop)."""
    times = _TIMES()
    used = times.user + times.system + times.children_user + times.children_system
    if _forked:
        live: list[int] = []
        descendants(os.getpid(), live)
        used += cpu_seconds(live)
    return used


def become_program(config: dict) -> None:
    """Drop from the runner's rights to a program's: another uid, no capabilities, no_new_privs."""
    uid = config["uid"]
    if uid is not None:
        # Raised while we are root: the file belongs to root once we are another uid, and the
        # seccomp filter keeps the program from making itself dumpable (its owner) again.
        _most_killable()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # /proc/self of a non-dumpable process belongs to root: writable only while dumpable
        try:
            prctl(PR_SET_DUMPABLE, 1)
            _most_killable()
        except OSError:
            pass
        finally:
            prctl(PR_SET_DUMPABLE, 0)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _most_killable() -> None:
    """oom_score_adj 1000: under memory pressure the kernel kills programs first, never the runner.
    (os calls, not open(): no text layer to set up in every program.)"""
    fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    try:
        os.write(fd, b"1000")
    finally:
        os.close(fd)


def take_fds(fds: list[int], targets: list[int]) -> None:
    """dup2 `fds` onto `targets` (0, 1, ...) without clobbering one another; close everything else."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for fd, target in zip(high, targets):
        os.dup2(fd, target)
    os.closerange(max(targets) + 1, 1 << 16)


def program_main(config: dict, fds: list[int]) -> None:
    """The program process (forked from the zygote): never returns."""
    try:
        request_fd, result_w, output_w = fds
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        take_fds([null, output_w, output_w, result_w, request_fd], [0, 1, 2, RESULT_FD, REQUEST_FD])
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as python3 sets it: a closed pipe is BrokenPipeError
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        become_program(config)
        chunks, offset = [], 0
        while True:
            chunk = os.pread(REQUEST_FD, 1 << 20, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        os.close(REQUEST_FD)
        request = LOADS(b"".join(chunks))
        del chunks
        timeout = request_timeout(request, config["timeout"])
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (config["memory"], config["memory"]))
        # The supervisor measures each call's CPU (job.py); this is only a backstop for this process:
        # every call's budget and the module-level code's, and 2 s more.
        cpu = int(timeout * (len(request["inputs"]) + 1)) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (config["fsize"], config["fsize"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        if config["nproc"]:  # root ignores RLIMIT_NPROC; the container's pids limit covers it
            resource.setrlimit(resource.RLIMIT_NPROC, (config["nproc"], config["nproc"]))
        seccomp.install()
    except BaseException as exc:
        try:
            write_line(RESULT_FD, {"fatal": f"the sandbox could not start the program: {exc}"})
        finally:
            EXIT(1)
    run_program(request)


def as_a_script() -> None:
    """What differs between a forked copy of the zygote and a fresh `python3 script.py`, made as
    python3 has it: sys.argv (a script's own name, not the runner's command line), a fresh numpy global RNG (the zygote's state would give every program the same
    "random" numbers; Python's `random` reseeds itself at fork) and the recursion depth a script
    has (the runner's own frames below the program count against the limit). Shared memory:
    without_resource_tracker, once for every program."""
    sys.argv = [PROGRAM_FILE]
    sys.orig_argv = ["python3", PROGRAM_FILE]
    if np is not None:  # 128 bits from the OS: ~10 us, where seed() with no argument takes ~0.5 ms
        np.random.seed(np.frombuffer(os.urandom(16), dtype=np.uint32))
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    # The runner's frames below the program, and one more for the C call into it (tests/
    # test_sandbox_idioms.py checks the depth a program reaches equals a script's).
    sys.setrecursionlimit(sys.getrecursionlimit() + depth + 1)


def without_resource_tracker() -> None:
    """multiprocessing's SharedMemory registers every segment with a resource tracker, a process it
    starts by exec, which seccomp refuses: no tracker (it only unlinks what a program forgot, and
    the cleanup after every program removes what a program leaves in /dev/shm). Called before the
    zygote forks, so every program has it without paying for it."""
    try:
        from multiprocessing import resource_tracker
    except ImportError:
        return
    resource_tracker.register = resource_tracker.unregister = lambda name, rtype: None
    resource_tracker.ensure_running = lambda: None


def run_program(request: dict) -> None:
    inputs = [DUMPS(grid) for grid in request["inputs"]]  # each call gets a fresh copy
    # A real module registered in sys.modules (in this process only): dataclasses, pickle (for
    # multiprocessing) and typing look the program's classes and functions up there by __name__.
    module = types.ModuleType(PROGRAM_MODULE)
    module.__builtins__ = __builtins__
    module.__file__ = PROGRAM_FILE
    sys.modules[PROGRAM_MODULE] = module
    namespace = module.__dict__
    source = request["source"]
    request.clear()
    # Its source where a file's would be (inspect.getsource, tracebacks that show the failing line);
    # no mtime, so linecache never looks for a file of that name.
    linecache.cache[PROGRAM_FILE] = (len(source), None, source.splitlines(True), PROGRAM_FILE)
    os.register_at_fork(after_in_parent=lambda: _forked.append(1))
    as_a_script()
    try:
        exec(compile(source, PROGRAM_FILE, "exec"), namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the program defines no callable transform(grid)")
    except BaseException as exc:
        trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        write_line(RESULT_FD, {"fatal": tail("".join(trace))})
        EXIT(0)
    write_line(RESULT_FD, {"loaded": cpu_used()})  # the first call's CPU budget starts here
    for i, grid_json in enumerate(inputs):
        try:
            try:
                returned = transform(LOADS(grid_json))
            except BaseException as exc:  # SystemExit and KeyboardInterrupt are program errors too
                trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
                raise CallFailed("".join(trace)) from None
            try:
                output = to_jsonable(returned)
            except RecursionError:
                raise TypeError("transform returned a self-referencing or too deeply nested value") from None
            line = DUMPS({"i": i, "out": output, "cpu": cpu_used()}, allow_nan=False) + "\n"
            if len(line) > MAX_OUTPUT_JSON:
                raise OutputTooLarge(f"returned value is {len(line)} bytes as JSON")
            flush_prints()
            data = line.encode()
            while data:
                data = data[WRITE(RESULT_FD, data):]
        except BaseException as exc:
            message = tail(str(exc) if isinstance(exc, CallFailed) else f"{type(exc).__name__}: {exc}")
            try:
                write_line(RESULT_FD, {"i": i, "error": message, "cpu": cpu_used()})
            except BaseException:
                EXIT(1)
    EXIT(0)

