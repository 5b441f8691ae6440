"""Fork server that runs untrusted `transform(grid)` programs, one fresh child process each.

Standard library + numpy only: this file runs inside the sandbox container (and, for the explicitly
unsafe `local` backend, on the host). Three kinds of process, so that no program can reach another:

- the *supervisor* (this process; PID 1 of its container in the Docker backend) reads requests,
  enforces the wall-clock limits, collects results, kills leftovers and answers. It holds requests
  and outputs, so no program is ever forked from it.
- the *zygote*, forked once before the first request is read, imports numpy (and PRELOAD) and then
  only forks: it never holds a request, an output or a program's source. For every program the
  supervisor hands it three descriptors (the request in a memfd, the result pipe, the output pipe);
  it forks, reaps its children and reports their exit status to the supervisor.
- the *program* process: with `--program-uid` (the runner is root with only SETUID, SETGID and KILL)
  it sets oom_score_adj 1000 while it may, drops to that uid (no capabilities), sets no_new_privs,
  its own rlimits and a seccomp filter (no exec, no PR_SET_DUMPABLE, no CLONE_PARENT, no inet,
  netlink or packet socket), reads its own request, execs
  the program and calls `transform` on each input, reporting each call as one JSON line on fd 3.

After every program the supervisor kills every process the program left, has what it left in the
`--scratch` directories (and, in `--exclusive` mode, SysV/POSIX IPC objects) removed by a cleaner
that runs as the program's uid within `--cleanup-limit` seconds, and checks its own and the zygote's
state (rlimits, nice, CPU affinity, scheduling policy, oom_score_adj, uids). If processes were
still left after every round of the sweep, the cleanup overran or the state changed, that program is answered `error` with the reason and the runner retires: it
writes `{"id": null, "retire": reason}` and exits, and the host starts a fresh runner for the
requests it had not answered. Nothing a program writes is trusted: result lines are parsed strictly
(no NaN/Infinity, bounded size, any decoding or nesting error is the program's `error`). A
request line it cannot read is answered `bad request` with the id the line starts with, if any.

Request (stdin):  {"id": ..., "source": str, "inputs": [grid, ...], "num_tests": int, "timeout": float}
Answer (stdout):  {"id": ..., "status": "ok"|"error"|"timeout", "outputs": [value|null, ...],
                   "call_errors": [str|null, ...], "error": str}
`inputs` are the test inputs followed by the training inputs; `status` is decided by the first
`num_tests` calls only (train calls feed train verification, not the status). A timed-out or
crashed child ends the attempt: later calls get no output. With `--hello` the runner first writes
one line `{"id": null, "ready": true, ...}` once numpy is imported (hosts ignore unknown ids).
`--exclusive` is for a runner that is PID 1 of its own container (the Docker backend): every other
process there except the zygote is a program's leftover.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import fcntl
import json
import linecache
import math
import os
import re
import resource
import select
import selectors
import signal
import socket
import stat
import struct
import sys
import time
import traceback
import types

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

_libc = ctypes.CDLL(None, use_errno=True)
# glibc reserves a 64 MiB arena per thread (up to 8 per CPU of the host): under a program's 1 GiB
# RLIMIT_AS that allowed ~17 threads, fewer than ThreadPoolExecutor's default on a big host. Set
# before any thread exists (the limit is fixed at the first arena made), so every fork inherits it.
M_ARENA_MAX = -8
if hasattr(_libc, "mallopt"):
    _libc.mallopt(M_ARENA_MAX, 2)

try:  # imported once here so every forked program starts with numpy warm
    import numpy as np
except ImportError:  # the runner still works for pure-Python programs
    np = None

# Also warm, if present: what model programs import most. scipy.ndimage makes every fork ~1 ms
# dearer here but saves ~0.3 s for each program that imports it.
PRELOAD = ("collections", "copy", "functools", "heapq", "itertools", "math", "typing", "scipy.ndimage")

TAIL = 2000  # characters of error text / captured output kept per attempt
MAX_OUTPUT_JSON = 1 << 20  # one call's return value, as JSON, may not exceed 1 MiB
MAX_CELLS = 100_000  # more list elements than this in a return value is an output-size error
MAX_PRINTED = 4 << 20  # stdout + stderr bytes a program may print before it is killed (error)
MAX_SOURCE_CHARS = 1 << 20  # a longer program is answered `error` without running (model output is far shorter)
MAX_REQUEST_BYTES = 64 << 20  # a longer request line is refused as a bad request
GC_WAIT = 0.5  # seconds the kernel's unix garbage collector gets to free what a dead program held
SWEEP_ROUNDS = 1000  # rounds of killing a program's leftover processes before the runner retires
PROGRAM_FILE = "<program>"  # the program's __file__ and its name in tracebacks
PROGRAM_MODULE = "__rps_program__"  # the program's __name__ (so `if __name__ == "__main__"` blocks never run)
_RESULT_FD = 3
_REQUEST_FD = 4
# Kept here so that a program that monkey-patches json or os in its own (forked) copy still gets
# its results reported; it cannot reach the runner's copy, nor the next program's.
_EXIT = os._exit
_WRITE = os.write
_DUMPS = json.dumps
_LOADS = json.loads
_NDARRAY = np.ndarray if np is not None else None
_GENERIC = np.generic if np is not None else None

PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 22, 36, 38


class OutputTooLarge(Exception):
    pass


class CallFailed(Exception):
    """transform() itself raised; carries the program's traceback text."""


def to_jsonable(value, budget=None):
    """Convert a return value to plain lists/ints/floats/... or raise (generators, cycles, objects).

    numpy arrays and scalars become lists and Python scalars; tuples become lists. Validation of
    the grid itself is the host's job: this only makes the value transportable.
    """
    budget = budget if budget is not None else [MAX_CELLS]
    if _NDARRAY is not None and isinstance(value, _NDARRAY):
        if value.size > MAX_CELLS:
            raise OutputTooLarge(f"returned array has {value.size} elements")
        value = value.tolist()
    elif _GENERIC is not None and isinstance(value, _GENERIC):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise OutputTooLarge(f"returned value has more than {MAX_CELLS} elements")
        return [to_jsonable(v, budget) for v in value]
    raise TypeError(f"transform returned a non-serialisable {type(value).__name__}")


def _flush_prints() -> None:
    """The child ends with os._exit, which drops Python's buffers: flush what the program printed."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


def _write_line(fd: int, obj) -> None:
    _flush_prints()
    data = (_DUMPS(obj, allow_nan=False) + "\n").encode()
    while data:
        data = data[_WRITE(fd, data):]


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def strict_loads(data):
    """JSON as the runner accepts it from anything a program can write to: finite numbers only.
    Raises ValueError for anything else (bad UTF-8, NaN, 1e999, nesting deeper than Python's stack)."""
    try:
        return _LOADS(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def request_timeout(request: dict, default: float) -> float:
    try:
        timeout = float(request.get("timeout") or default)
    except (TypeError, ValueError):
        return default
    return timeout if math.isfinite(timeout) and timeout > 0 else default


# -- the program process ----------------------------------------------------------------------

# seccomp for programs: no execve/execveat (an exec'd binary would be dumpable again and could
# lower its oom_score_adj), no prctl(PR_SET_DUMPABLE), no clone(CLONE_PARENT) (a sibling is the
# zygote's child, out of the program's process group), clone3 answers ENOSYS (its flags are in
# memory, out of seccomp's reach; libc falls back to clone) and no AF_INET/AF_INET6/AF_NETLINK/
# AF_PACKET socket (there is no network: sockets would only outlive the program in the container's
# network namespace, readable by the next one). x32 syscalls are refused on x86_64.
_SECCOMP_ARCH = {  # machine: (AUDIT_ARCH, execve, execveat, prctl, clone, clone3, socket, has x32)
    "x86_64": (0xC000003E, 59, 322, 157, 56, 435, 41, True),
    "aarch64": (0xC00000B7, 221, 281, 167, 220, 435, 198, False),
}
CLONE_PARENT = 0x8000
REFUSED_FAMILIES = (socket.AF_INET, socket.AF_INET6, 16, 17)  # + AF_NETLINK, AF_PACKET
ENOSYS, EPERM, EAFNOSUPPORT = 38, 1, 97


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp_filter():
    """The BPF program (kept alive for the zygote's forks), or None on an architecture we do not know."""
    spec = _SECCOMP_ARCH.get(os.uname().machine)
    if spec is None:
        return None
    arch, execve, execveat, prctl, clone, clone3, sock, x32 = spec
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys, eafnosupport = (0x00050000 | e for e in (EPERM, ENOSYS, EAFNOSUPPORT))
    first_arg = 16  # offsetof(struct seccomp_data, args[0]), its low 32 bits on little endian

    def rule(nr, body):  # body runs for syscall `nr` only and ends in a return
        return [(jeq, 0, len(body), nr)] + body

    families = [(jeq, len(REFUSED_FAMILIES) - 1 - j, int(j == len(REFUSED_FAMILIES) - 1), family)
                for j, family in enumerate(REFUSED_FAMILIES)]
    code = [(load, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (load, 0, 0, 0)]
    if x32:
        code += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    code += rule(execve, [(ret, 0, 0, eperm)]) + rule(execveat, [(ret, 0, 0, eperm)])
    code += rule(clone3, [(ret, 0, 0, enosys)])
    code += rule(prctl, [(load, 0, 0, first_arg), (jeq, 0, 1, PR_SET_DUMPABLE), (ret, 0, 0, eperm), (ret, 0, 0, allow)])
    code += rule(clone, [(load, 0, 0, first_arg), (jset, 0, 1, CLONE_PARENT), (ret, 0, 0, eperm), (ret, 0, 0, allow)])
    code += rule(sock, [(load, 0, 0, first_arg), *families, (ret, 0, 0, eafnosupport), (ret, 0, 0, allow)])
    code += [(ret, 0, 0, allow)]
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in code))
    return buffer, _SockFprog(len(code), ctypes.addressof(buffer))


_SECCOMP = None  # built before the zygote forks


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _become_program(config: dict) -> None:
    """Drop from the runner's rights to a program's: another uid, no capabilities, no_new_privs."""
    uid = config["uid"]
    if uid is not None:
        # Raised while we are root: the file belongs to root once we are another uid, and the
        # seccomp filter keeps the program from making itself dumpable (its owner) again.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # /proc/self of a non-dumpable process belongs to root: writable only while dumpable
        try:
            _prctl(PR_SET_DUMPABLE, 1)
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        finally:
            _prctl(PR_SET_DUMPABLE, 0)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _take_fds(fds: list[int], targets: list[int]) -> None:
    """dup2 `fds` onto `targets` (0, 1, ...) without clobbering one another; close everything else."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for fd, target in zip(high, targets):
        os.dup2(fd, target)
    os.closerange(max(targets) + 1, 1 << 16)


def _program_main(config: dict, fds: list[int]) -> None:
    """The program process (forked from the zygote): never returns."""
    try:
        request_fd, result_w, output_w = fds
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        _take_fds([null, output_w, output_w, result_w, request_fd], [0, 1, 2, _RESULT_FD, _REQUEST_FD])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _become_program(config)
        chunks, offset = [], 0
        while True:
            chunk = os.pread(_REQUEST_FD, 1 << 20, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        os.close(_REQUEST_FD)
        request = _LOADS(b"".join(chunks))
        del chunks
        timeout = request_timeout(request, config["timeout"])
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (config["memory"], config["memory"]))
        cpu = int(timeout * len(request["inputs"])) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (config["fsize"], config["fsize"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if config["nproc"]:  # root ignores RLIMIT_NPROC; the container's pids limit covers it
            resource.setrlimit(resource.RLIMIT_NPROC, (config["nproc"], config["nproc"]))
        if _SECCOMP is not None:
            _check(_libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(_SECCOMP[1]), 0, 0), "seccomp")
    except BaseException as exc:
        try:
            _write_line(_RESULT_FD, {"fatal": f"the sandbox could not start the program: {exc}"})
        finally:
            _EXIT(1)
    _run_program(request)


def _run_program(request: dict) -> None:
    inputs = [_DUMPS(grid) for grid in request["inputs"]]  # each call gets a fresh copy
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
    try:
        exec(compile(source, PROGRAM_FILE, "exec"), namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the program defines no callable transform(grid)")
    except BaseException as exc:
        trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        _write_line(_RESULT_FD, {"fatal": _tail("".join(trace))})
        _EXIT(0)
    for i, grid_json in enumerate(inputs):
        try:
            try:
                returned = transform(_LOADS(grid_json))
            except BaseException as exc:  # SystemExit and KeyboardInterrupt are program errors too
                trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
                raise CallFailed("".join(trace)) from None
            try:
                output = to_jsonable(returned)
            except RecursionError:
                raise TypeError("transform returned a self-referencing or too deeply nested value") from None
            line = _DUMPS({"i": i, "out": output}, allow_nan=False) + "\n"
            if len(line) > MAX_OUTPUT_JSON:
                raise OutputTooLarge(f"returned value is {len(line)} bytes as JSON")
            _flush_prints()
            data = line.encode()
            while data:
                data = data[_WRITE(_RESULT_FD, data):]
        except BaseException as exc:
            message = _tail(str(exc) if isinstance(exc, CallFailed) else f"{type(exc).__name__}: {exc}")
            try:
                _write_line(_RESULT_FD, {"i": i, "error": message})
            except BaseException:
                _EXIT(1)
    _EXIT(0)


# -- cleanup ------------------------------------------------------------------------------------

_IPC_KINDS = ("shm", "sem", "msg")


def anything_left(scratch: tuple[str, ...], uid: int, exclusive: bool) -> bool:
    """Did the last program leave a file of `uid` in the scratch directories (or, in exclusive
    mode, an IPC object)? Cheap: stops at the first one."""
    for root in scratch:
        try:
            with os.scandir(root) as entries:
                for entry in entries:
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        return True
        except OSError:
            continue
    if not exclusive:
        return False
    for kind in _IPC_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                if len(f.read().splitlines()) > 1:
                    return True
        except OSError:
            pass
    try:
        return bool(os.listdir("/dev/mqueue"))
    except OSError:
        return False


def _remove_entry(name: str) -> None:
    """Delete `name` (relative to the cwd) and everything under it: iteratively and by chdir, so
    that no depth, path length, mode (we own it: chmod first) or file type (fifos and sockets are
    never opened) can stop it."""
    if not stat.S_ISDIR(os.lstat(name).st_mode):
        os.unlink(name)
        return
    path = [name]
    os.chmod(name, stat.S_IRWXU)
    os.chdir(name)
    while path:
        subdir, removed = None, False
        with os.scandir(".") as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdir = entry.name
                    break
                os.unlink(entry.name)
                removed = True
        if subdir is not None:
            os.chmod(subdir, stat.S_IRWXU)
            os.chdir(subdir)
            path.append(subdir)
        elif not removed:  # a scan that found nothing: the directory is empty
            os.chdir("..")
            os.rmdir(path.pop())


def _cleaner_main(config: dict, fds: list[int]) -> None:
    """Forked from the zygote, as the program's uid: remove what the last program left. Exit 0
    when nothing is left. The supervisor kills it at its deadline."""
    try:
        os.setsid()
        _take_fds([os.open(os.devnull, os.O_RDWR)] * 3, [0, 1, 2])
        uid = config["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        me = os.getuid()
        for root in config["scratch"]:
            try:
                os.chdir(root)
                names = [e.name for e in os.scandir(".") if e.stat(follow_symlinks=False).st_uid == me]
            except OSError:
                continue
            for name in names:
                try:
                    os.chdir(root)
                    _remove_entry(name)
                except OSError:
                    pass
        os.chdir("/")
        if config["exclusive"]:
            _remove_ipc()
        _EXIT(1 if anything_left(config["scratch"], me, config["exclusive"]) else 0)
    finally:
        _EXIT(2)


def _remove_ipc() -> None:
    removers = {"shm": lambda i: _libc.shmctl(i, 0, None), "sem": lambda i: _libc.semctl(i, 0, 0),
                "msg": lambda i: _libc.msgctl(i, 0, None)}  # IPC_RMID is 0 for all three
    for kind in _IPC_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        for ipc_id in ids:
            removers[kind](ipc_id)
    try:
        for name in os.listdir("/dev/mqueue"):
            try:
                os.unlink(os.path.join("/dev/mqueue", name))
            except OSError:
                pass
    except OSError:
        pass


# -- the zygote ---------------------------------------------------------------------------------

class Zygote:
    """The clean parent of every program, forked before the first request is read. It reports
    each child's start and exit status as 17-byte records (kind b"s"/b"x", pid, status) on its socket."""

    RECORD = 17

    def __init__(self, config: dict):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _zygote_loop(theirs, config)
            finally:
                _EXIT(1)
        theirs.close()
        self.pid = pid
        self.sock = ours
        self.pending = b""
        self.exited: dict[int, int] = {}  # pid -> wait status, not yet claimed

    def _read(self) -> list[tuple[bytes, int, int]]:
        """Read what the zygote sent (blocks until there is something)."""
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the sandbox's program starter (zygote) died")
        self.pending += data
        records = []
        while len(self.pending) >= self.RECORD:
            record, self.pending = self.pending[:self.RECORD], self.pending[self.RECORD:]
            records.append((record[:1], int.from_bytes(record[1:9], "little", signed=True),
                            int.from_bytes(record[9:], "little", signed=True)))
        for kind, pid, status in records:
            if kind == b"x":
                self.exited[pid] = status
        return records

    def spawn(self, kind: bytes, fds: list[int]) -> int:
        """Start a program (b"p": request memfd, result and output pipes) or a cleaner (b"c");
        return its pid (-1 if it could not be forked)."""
        socket.send_fds(self.sock, [kind], fds)
        while True:
            for record_kind, pid, _ in self._read():
                if record_kind == b"s":
                    return pid

    def poll(self) -> None:
        """The socket is readable: take in the exits it reports."""
        self._read()

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        """The wait status of our child `pid` once it has exited; None if not within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.exited:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            self._read()
        return self.exited.pop(pid)


def _zygote_loop(sock: socket.socket, config: dict) -> None:
    """Fork on request and reap, nothing else: it never sees a request, only descriptors. It reaps
    every child, not only those it forked: a process a program made its sibling (clone with
    CLONE_PARENT, which seccomp refuses too) would otherwise stay a zombie for the container's
    life, counted against every later program's process limit."""
    fd = sock.fileno()
    woken_r, woken_w = os.pipe()  # SIGCHLD for any child, ours or not, makes it readable
    os.set_blocking(woken_r, False)
    os.set_blocking(woken_w, False)
    signal.set_wakeup_fd(woken_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> pidfd of the processes we forked and not yet reported

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            pidfd = children.pop(pid, None)
            if pidfd is not None:  # one of ours: the supervisor waits for its status
                os.close(pidfd)
                sock.sendall(b"x" + pid.to_bytes(8, "little", signed=True) + status.to_bytes(8, "little", signed=True))

    while True:
        ready = select.select([fd, woken_r, *children.values()], [], [])[0]
        if ready != [fd]:
            try:
                while os.read(woken_r, 4096):
                    pass
            except BlockingIOError:
                pass
            reap()
        if fd not in ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1, 8)
        except OSError:
            _EXIT(0)
        if not message:
            _EXIT(0)
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(woken_r)
            os.close(woken_w)
            (_program_main if message == b"p" else _cleaner_main)(config, fds)
            _EXIT(1)
        for passed in fds:
            os.close(passed)
        if pid > 0:
            children[pid] = os.pidfd_open(pid)
        sock.sendall(b"s" + pid.to_bytes(8, "little", signed=True) + bytes(8))


def _tail(text: str) -> str:
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


class Job:
    """One running program: its process, pipes and what it has reported so far. The supervisor
    keeps only the request's id and counts, never its source or inputs."""

    def __init__(self, meta: dict, pid: int, result_fd: int, output_fd: int, timeout: float):
        self.meta = meta
        self.pid = pid
        self.result_fd = result_fd
        self.output_fd = output_fd
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.buffer = b""
        self.captured = b""
        self.printed = 0
        self.outputs = [None] * meta["calls"]
        self.call_errors = [None] * meta["calls"]
        self.done_calls = 0
        self.fatal = None
        self.timed_out = False
        self.exit_info = None
        self.cpu_limited = False
        self.open_fds = 2
        self.must_kill = False  # set when the program broke a limit the runner enforces itself
        self.pidfd = None  # readable once the program's main process has exited

    def on_result_bytes(self, data: bytes) -> None:
        if b"\n" not in data:
            self.buffer += data
            lines = []
        else:
            *lines, rest = (self.buffer + data).split(b"\n")
            self.buffer = rest
        if len(self.buffer) > MAX_OUTPUT_JSON + 4096:  # no real report line is this long
            self.fatal = "the program wrote too much to the runner's result channel"
            self.must_kill = True
            self.buffer = b""
        for line in lines:
            if self.done_calls >= len(self.outputs):
                self.fatal = "the program wrote to the runner's result channel"
                self.must_kill = True
                return
            try:
                msg = strict_loads(line)
                if "fatal" in msg:
                    self.fatal = _tail(str(msg["fatal"]))
                    continue
                i = int(msg["i"])
                if i != self.done_calls:
                    raise ValueError("calls reported out of order")
                error = msg.get("error")
                output = msg.get("out")
            except Exception:  # anything a program can write there is its own failure
                self.fatal = "the program wrote to the runner's result channel"
                continue
            if error is not None:
                self.call_errors[i] = _tail(str(error))
            else:
                self.outputs[i] = output
            self.done_calls += 1
            self.deadline = time.monotonic() + self.timeout

    def on_output_bytes(self, data: bytes) -> None:
        self.printed += len(data)
        self.captured = (self.captured + data)[-TAIL:]
        if self.printed > MAX_PRINTED and not self.must_kill:
            self.fatal = f"the program printed more than {MAX_PRINTED >> 20} MiB"
            self.must_kill = True

    def answer(self) -> dict:
        num_tests = self.meta["num_tests"]
        test_errors = [e for e in self.call_errors[:num_tests] if e]
        completed_tests = min(self.done_calls, num_tests)
        if (self.timed_out or self.cpu_limited) and completed_tests < num_tests:
            status = "timeout"
            error = (f"a call ran past its {self.timeout:g}s limit" if self.timed_out
                     else "the program used up its CPU time limit")
        elif self.fatal:
            status, error = "error", self.fatal
        elif test_errors:
            status, error = "error", test_errors[0]
        elif completed_tests < num_tests:
            status, error = "error", f"the program process ended early ({self.exit_info})"
        else:
            status, error = "ok", ""
        if status != "ok" and self.captured:
            output = self.captured.decode("utf-8", "replace")[-TAIL // 2:]
            error = error[: TAIL // 2] + "\n--- program output (tail) ---\n" + output
        return {
            "id": self.meta["id"],
            "status": status,
            "outputs": self.outputs,
            "call_errors": self.call_errors,
            "error": error,
        }


def _prctl(option: int, arg: int) -> None:
    try:
        _libc.prctl(option, arg, 0, 0, 0)
    except Exception:
        pass


def _children(of: int = 0) -> list[int]:
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


def _descendants(pid: int, found: list[int], limit: int = 4096) -> None:
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


def _count_own_tasks() -> int:
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


def _free_blocks(roots) -> list[int]:
    free = []
    for root in roots:
        try:
            free.append(os.statvfs(root).f_bfree)
        except OSError:
            free.append(0)
    return free


def _count_unix_sockets() -> int:
    """Unix sockets of our network namespace (the container's, in exclusive mode)."""
    try:
        with open("/proc/net/unix", "rb") as f:
            return f.read().count(b"\n") - 1
    except OSError:
        return 0


def _collect_unix_garbage() -> None:
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


class Runner:
    def __init__(self, workers: int, config: dict, exclusive: bool = False, cleanup_limit: float = 2.0):
        self.workers = workers
        self.config = config
        self.default_timeout = config["timeout"]
        self.exclusive = exclusive
        self.scratch = config["scratch"]
        self.cleanup_limit = cleanup_limit
        self.owner = config["uid"] if config["uid"] is not None else os.getuid()  # of what programs leave
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pid
        self.queue: collections.deque[tuple[dict, bytes]] = collections.deque()
        self.stdin_open = True
        self.partial: list[bytes] = []
        self.partial_size = 0
        self.retiring = ""
        self.zygote = Zygote(config)
        self.baseline = self._states()
        self.free_at_start = dict(zip(self.scratch, _free_blocks(self.scratch)))
        self.unix_sockets_at_start = _count_unix_sockets() if exclusive else 0

    def _states(self) -> dict:
        return {"runner": process_state(0), "zygote": process_state(self.zygote.pid)}

    def serve(self, hello: bool = False) -> None:
        if hello:
            self._emit({"id": None, "ready": True, "pid": os.getpid(), "uid": os.getuid(),
                        "program_uid": self.owner, "zygote": self.zygote.pid,
                        "python": sys.version.split()[0], "numpy": getattr(np, "__version__", None)})
        try:
            self.selector.register(0, selectors.EVENT_READ, ("stdin", None))
            os.set_blocking(0, False)
        except PermissionError:  # a regular file cannot be polled: it is all there, read it now
            while self.stdin_open:
                self._read_stdin()
        while (self.stdin_open or self.queue or self.jobs) and not self.retiring:
            while self.queue and len(self.jobs) < self.workers and not self.retiring:
                self._start(*self.queue.popleft())
            timeout = None
            if self.jobs:
                timeout = max(0.0, min(j.deadline for j in self.jobs.values()) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                kind, job = key.data
                if kind == "stdin":
                    self._read_stdin()
                elif job.pid not in self.jobs:
                    continue
                elif kind == "exit":
                    self._drain(job)
                    self._kill(job)
                else:
                    self._read_job(job, key.fd, kind)
                if self.retiring:
                    break
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if self.retiring:
                    break
                if job.must_kill:
                    self._kill(job)
                elif now >= job.deadline:
                    job.timed_out = True
                    self._kill(job)
        if self.retiring:  # programs still running here were not answered: the host runs them again
            for job in list(self.jobs.values()):
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except OSError:
                    pass
            self._emit({"id": None, "retire": self.retiring})

    def _read_stdin(self) -> None:
        try:
            data = os.read(0, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self.stdin_open = False
            if 0 in self.selector.get_map():
                self.selector.unregister(0)
            data = b"\n"
        while data:
            cut = data.find(b"\n")
            if cut < 0:
                if self.partial_size <= MAX_REQUEST_BYTES:  # past it, the rest of the line is dropped
                    self.partial.append(data)
                self.partial_size += len(data)
                return
            line = b"".join(self.partial) + data[:cut]
            size = self.partial_size + cut
            self.partial, self.partial_size = [], 0
            data = data[cut + 1:]
            if line.strip():
                self._on_request(line, size)

    def _on_request(self, line: bytes, size: int) -> None:
        request = None
        try:
            if size > MAX_REQUEST_BYTES:
                raise ValueError(f"the request is {size} bytes, more than {MAX_REQUEST_BYTES}")
            request = strict_loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("source"), str):
                raise ValueError("a request needs a string 'source'")
            inputs = request.setdefault("inputs", [])
            if not isinstance(inputs, list):
                raise ValueError("'inputs' must be a list")
            num_tests = request.get("num_tests", len(inputs))
            if not isinstance(num_tests, int) or isinstance(num_tests, bool):
                raise ValueError("'num_tests' must be an integer")
        except ValueError as exc:
            self._emit({"id": _plain_id(request) if request is not None else _leading_id(line), "status": "error",
                        "outputs": [], "call_errors": [], "error": f"bad request: {exc}"})
            return
        meta = {"id": _plain_id(request), "num_tests": num_tests, "calls": len(inputs),
                "timeout": request_timeout(request, self.default_timeout)}
        if len(request["source"]) > MAX_SOURCE_CHARS:
            self._emit({"id": meta["id"], "status": "error", "outputs": [None] * len(inputs),
                        "call_errors": [None] * len(inputs),
                        "error": f"the program is {len(request['source'])} characters long; the sandbox "
                                 f"runs programs of at most {MAX_SOURCE_CHARS}"})
            return
        self.queue.append((meta, line))

    def _start(self, meta: dict, line: bytes) -> None:
        request_fd = os.memfd_create("rps-request", os.MFD_CLOEXEC)
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(request_fd, view):]
            pid = self.zygote.spawn(b"p", [request_fd, result_w, output_w])
        except (OSError, RuntimeError) as exc:
            pid, why = -1, str(exc)
        else:
            why = "the sandbox could not fork a process for it"
        finally:
            for fd in (request_fd, result_w, output_w):
                os.close(fd)
        if pid < 0:
            os.close(result_r)
            os.close(output_r)
            self._emit({"id": meta["id"], "status": "error", "outputs": [None] * meta["calls"],
                        "call_errors": [None] * meta["calls"], "error": why})
            if self._zygote_dead():
                self.retiring = "the sandbox's program starter (zygote) died"
            return
        os.set_blocking(result_r, False)
        os.set_blocking(output_r, False)
        job = Job(meta, pid, result_r, output_r, meta["timeout"])
        self.jobs[pid] = job
        self.selector.register(result_r, selectors.EVENT_READ, ("result", job))
        self.selector.register(output_r, selectors.EVENT_READ, ("output", job))
        try:  # a daemon the program left may hold its pipes open: its exit is the end, not their EOF
            job.pidfd = os.pidfd_open(pid)
            self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", job))
        except (AttributeError, OSError):
            job.pidfd = None

    def _read_job(self, job: Job, fd: int, kind: str) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            job.on_result_bytes(data) if kind == "result" else job.on_output_bytes(data)
            return
        self.selector.unregister(fd)
        os.close(fd)
        job.open_fds -= 1
        if job.open_fds == 0:
            self._finish(job)

    def _drain(self, job: Job) -> None:
        """Read what the exited program left in its pipes (a live descendant may keep adding)."""
        for fd, on_bytes in ((job.result_fd, job.on_result_bytes), (job.output_fd, job.on_output_bytes)):
            for _ in range(64):
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                on_bytes(data)

    def _kill(self, job: Job) -> None:
        for fd in (job.result_fd, job.output_fd):
            try:
                self.selector.unregister(fd)
                os.close(fd)
            except (KeyError, ValueError, OSError):
                pass
        job.open_fds = 0
        self._finish(job)

    def _finish(self, job: Job) -> None:
        if job.pidfd is not None:
            try:
                self.selector.unregister(job.pidfd)
            except (KeyError, ValueError):
                pass
            os.close(job.pidfd)
            job.pidfd = None
        try:
            os.killpg(job.pid, signal.SIGKILL)  # the program and anything it forked
        except OSError:
            pass
        try:  # the zygote reaps it and tells us how it ended
            status = self.zygote.wait(job.pid, timeout=30)
        except RuntimeError:
            status = None
        if status is None:
            self.retiring = "the sandbox's program starter (zygote) stopped answering"
            status = 0
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            job.exit_info = f"killed by signal {signal.Signals(signum).name}"
            job.cpu_limited = signum == signal.SIGXCPU
        else:
            job.exit_info = f"exit code {os.WEXITSTATUS(status)}"
        del self.jobs[job.pid]
        swept = self._sweep()
        answer = job.answer()
        problem = self.retiring or swept or self._clean_up() or self._still_held() or self._state_changed()
        if problem:
            answer["status"], answer["error"] = "error", problem
            self.retiring = problem
        self._emit(answer)

    def _sweep(self) -> str:
        """Kill and reap every process that is not a running job or the zygote: escaped
        grandchildren, fork bombs, daemons. As a subreaper (or PID 1) they are all ours or, if a
        program made them its siblings, the zygote's, which reaps them. '' or, when some are still
        there after every round, why the runner must retire."""
        keep = set(self.jobs) | {self.zygote.pid}
        for round_ in range(SWEEP_ROUNDS):
            if self.exclusive:  # PID 1 of the container: every other process is a leftover
                strays = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep and p != "1"]
                doomed = strays
            else:
                strays = [pid for pid in _children() + _children(self.zygote.pid) if pid not in keep]
                doomed = list(strays)
                for pid in strays:
                    _descendants(pid, doomed)
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
                f"killing after {SWEEP_ROUNDS} rounds; the runner was replaced")

    def _clean_up(self) -> str:
        """Have what the program left removed, within the cleanup limit; '' or why it failed."""
        if not anything_left(self.scratch, self.owner, self.exclusive):
            return ""
        try:
            pid = self.zygote.spawn(b"c", [])
        except (OSError, RuntimeError) as exc:
            return f"the runner could not clean up after the program: {exc}"
        if pid < 0:
            return "the runner could not fork a cleaner after the program"
        try:
            status = self.zygote.wait(pid, self.cleanup_limit)
            done = status is not None
            if not done:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                self.zygote.wait(pid, timeout=30)
        except RuntimeError as exc:
            return f"the runner could not clean up after the program: {exc}"
        if not done:
            return (f"the program left more files in {', '.join(self.scratch)} than the runner can remove "
                    f"in {self.cleanup_limit:g} s; the runner was replaced")
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return "the program left files or IPC objects the runner could not remove; the runner was replaced"
        return ""

    def _held(self) -> list[str]:
        """What a dead program may still hold, as `_still_held` compares it with the start: free
        space of the scratch tmpfs, and (in exclusive mode, where the network namespace is the
        container's) the number of unix sockets, which an SCM_RIGHTS cycle keeps alive."""
        if not self.exclusive:  # elsewhere others share the file systems and the network namespace
            return []
        held = []
        for root, free in zip(self.scratch, _free_blocks(self.scratch)):
            if free < self.free_at_start.get(root, free):
                held.append(f"space in {root}")
        if _count_unix_sockets() > self.unix_sockets_at_start:
            held.append("unix sockets (and what they carry: files, memory)")
        return held

    def _still_held(self) -> str:
        """'' once what the program held is back; otherwise why the runner retires. An SCM_RIGHTS
        cycle of sockets (carrying unlinked files or memfds) outlives its processes until the
        kernel's unix garbage collector runs: trigger it and wait a little before blaming."""
        if not self._held():
            return ""
        _collect_unix_garbage()
        deadline = time.monotonic() + GC_WAIT
        while (held := self._held()) and time.monotonic() < deadline:
            time.sleep(0.002)
        if not held:
            return ""
        return (f"the program left {', '.join(held)} held after it ended, which the runner could not "
                f"free; the runner was replaced")

    def _zygote_dead(self) -> bool:
        try:
            return os.waitpid(self.zygote.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            return True

    def _state_changed(self) -> str:
        if self._zygote_dead():
            return "the program killed the sandbox's program starter; the runner was replaced"
        try:
            now = self._states()
        except OSError as exc:
            return f"the runner could not check its own state after the program ({exc}); it was replaced"
        changed = [f"{what} of the {who}" for who in now for what in now[who]
                   if now[who][what] != self.baseline[who][what]]
        if changed:
            return f"the program changed the sandbox runner's state ({', '.join(changed)}); the runner was replaced"
        return ""

    def _emit(self, answer: dict) -> None:
        try:
            text = json.dumps(answer, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            calls = len(answer.get("outputs") or [])
            text = json.dumps({"id": answer.get("id"), "status": "error", "outputs": [None] * calls,
                               "call_errors": [None] * calls,
                               "error": "the program's results could not be encoded"})
        data = (text + "\n").encode()
        while data:
            try:
                data = data[os.write(1, data):]
            except BlockingIOError:
                time.sleep(0.001)


def _plain_id(request) -> object:
    """The request's id if it is one the host can have sent (a JSON scalar), else None."""
    value = request.get("id") if isinstance(request, dict) else None
    return value if isinstance(value, (str, int, float, bool)) or value is None else None


_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*(-?[0-9]{1,18})\s*[,}]')


def _leading_id(line: bytes) -> int | None:
    """The id a request line we could not parse starts with (as the hosts write it), so that its
    sender can match the refusal to it; None if there is none."""
    found = _LEADING_ID.match(line[:64])
    return int(found.group(1)) if found else None


def _preload(modules) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> None:
    global _SECCOMP
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs run at once")
    parser.add_argument("--timeout", type=float, default=2.0, help="default seconds per transform call")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per program")
    parser.add_argument("--fsize-mb", type=int, default=1, help="largest file a program may write")
    parser.add_argument("--nproc", type=int, default=64,
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
    elif args.nproc > 0 and os.getuid() != 0:
        # RLIMIT_NPROC counts every task of our uid, so count what already runs under it (+ the zygote).
        nproc = args.nproc + 1 + (1 if args.exclusive else _count_own_tasks())
    config = {"memory": args.memory_mb << 20, "fsize": args.fsize_mb << 20, "nproc": nproc,
              "timeout": args.timeout, "uid": args.program_uid, "scratch": tuple(args.scratch),
              "exclusive": args.exclusive, "supervisor": os.getpid()}
    workers = 1 if args.exclusive else max(1, args.workers)
    if not args.no_preload:
        _preload(PRELOAD)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of programs stay ours, so we can kill and reap them
    _prctl(PR_SET_DUMPABLE, 0)  # same-uid programs may not ptrace us or open /proc/<us>/mem
    _SECCOMP = _seccomp_filter()
    runner = Runner(workers, config, args.exclusive, args.cleanup_limit)
    runner.serve(args.hello)
    runner.zygote.sock.close()  # the zygote ends at end of input; reap it
    os.waitpid(runner.zygote.pid, 0)


if __name__ == "__main__":
    main()
