"""Fork server that runs untrusted `transform(grid)` programs, one fresh child process each.

Standard library + numpy only: this file runs inside the sandbox container (and, for the explicitly
unsafe `local` backend, on the host). It imports numpy once, then for every request forks a child
that sets rlimits, execs the program and calls `transform` on each input. The child reports each
call as one JSON line on a private pipe; the parent enforces a wall-clock limit per call, drains and
caps the child's stdout/stderr, kills the child's process group and every stray descendant when it
is done, and answers with one JSON line. Nothing is ever unpickled: requests and answers are JSON.

Request (stdin):  {"id": ..., "source": str, "inputs": [grid, ...], "num_tests": int, "timeout": float}
Answer (stdout):  {"id": ..., "status": "ok"|"error"|"timeout", "outputs": [value|null, ...],
                   "call_errors": [str|null, ...], "error": str}
`inputs` are the test inputs followed by the training inputs; `status` is decided by the first
`num_tests` calls only (train calls feed train verification, not the status). A timed-out or
crashed child ends the attempt: later calls get no output. With `--hello` the runner first writes
one line `{"id": null, "ready": true, ...}` once numpy is imported (hosts ignore unknown ids).

After every program the runner kills every process the program left and deletes what the program
left in the `--scratch` directories (entries owned by the runner's uid). `--exclusive` is for a
runner that is PID 1 of its own container and alone with its uid (the Docker backend): it also
kills every process it may signal and removes SysV/POSIX IPC objects, so no program can leave
anything for the next one.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import resource
import selectors
import shutil
import signal
import stat
import sys
import time
import traceback

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

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
_RESULT_FD = 3
# Kept here so that a program that monkey-patches json or os in its own (forked) copy still gets
# its results reported; it cannot reach the runner's copy, nor the next program's.
_EXIT = os._exit
_WRITE = os.write
_DUMPS = json.dumps
_LOADS = json.loads
_NDARRAY = np.ndarray if np is not None else None
_GENERIC = np.generic if np is not None else None

_libc = ctypes.CDLL(None, use_errno=True)


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


def _child(request: dict, limits: dict) -> None:
    """Runs in the forked child: never returns."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
        cpu = int(limits["timeout"] * len(request["inputs"])) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if limits["nproc"]:  # root ignores RLIMIT_NPROC; the container's pids limit covers it
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    except (ValueError, OSError) as exc:
        _write_line(_RESULT_FD, {"fatal": f"setting limits failed: {exc}"})
        _EXIT(1)
    try:  # under memory pressure the kernel should kill a program, never the runner
        _prctl(4, 1)  # /proc/self of a non-dumpable process belongs to root: writable only while dumpable
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    finally:
        _prctl(4, 0)
    inputs = [_DUMPS(grid) for grid in request["inputs"]]  # each call gets a fresh copy
    namespace = {"__name__": "__rps_program__", "__builtins__": __builtins__}
    source = request["source"]
    request.clear()
    try:
        exec(compile(source, "<program>", "exec"), namespace)
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


def _tail(text: str) -> str:
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


class Job:
    """One running program: its child, pipes and what it has reported so far."""

    def __init__(self, request: dict, pid: int, result_fd: int, output_fd: int, timeout: float):
        self.request = request
        self.pid = pid
        self.result_fd = result_fd
        self.output_fd = output_fd
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.buffer = b""
        self.captured = b""
        self.printed = 0
        self.outputs = [None] * len(request["inputs"])
        self.call_errors = [None] * len(request["inputs"])
        self.done_calls = 0
        self.fatal = None
        self.timed_out = False
        self.exit_info = None
        self.cpu_limited = False
        self.open_fds = 2
        self.must_kill = False  # set when the program broke a limit the runner enforces itself
        self.pidfd = None  # readable once the program's main process has exited

    def on_result_bytes(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
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
                msg = json.loads(line)
                if "fatal" in msg:
                    self.fatal = str(msg["fatal"])
                    continue
                i = int(msg["i"])
                if i != self.done_calls:
                    raise ValueError("calls reported out of order")
            except (ValueError, KeyError, TypeError):
                self.fatal = "the program wrote to the runner's result channel"
                continue
            if "error" in msg:
                self.call_errors[i] = _tail(str(msg["error"]))
            else:
                self.outputs[i] = msg.get("out")
            self.done_calls += 1
            self.deadline = time.monotonic() + self.timeout

    def on_output_bytes(self, data: bytes) -> None:
        self.printed += len(data)
        self.captured = (self.captured + data)[-TAIL:]
        if self.printed > MAX_PRINTED and not self.must_kill:
            self.fatal = f"the program printed more than {MAX_PRINTED >> 20} MiB"
            self.must_kill = True

    def answer(self) -> dict:
        num_tests = int(self.request.get("num_tests", len(self.request["inputs"])))
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
            "id": self.request.get("id"),
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


def _children() -> list[int]:
    """Our direct children (zombies included), via /proc/self/task/*/children when available."""
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        return pids
    except (OSError, ValueError):
        pass
    me = os.getpid()
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


class Runner:
    def __init__(self, workers: int, limits: dict, default_timeout: float,
                 exclusive: bool = False, scratch: tuple[str, ...] = ()):
        self.workers = workers
        self.limits = limits
        self.default_timeout = default_timeout
        self.exclusive = exclusive
        self.scratch = scratch
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pid
        self.queue: collections.deque[dict] = collections.deque()
        self.stdin_open = True
        self.stdin_buffer = b""

    def serve(self, hello: bool = False) -> None:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of programs stay ours, so we can kill them
        _prctl(4, 0)  # PR_SET_DUMPABLE 0: same-uid programs may not ptrace us or open /proc/<us>/mem
        if hello:
            self._emit({"id": None, "ready": True, "pid": os.getpid(), "uid": os.getuid(),
                        "python": sys.version.split()[0], "numpy": getattr(np, "__version__", None)})
        try:
            self.selector.register(0, selectors.EVENT_READ, ("stdin", None))
            os.set_blocking(0, False)
        except PermissionError:  # a regular file cannot be polled: it is all there, read it now
            while self.stdin_open:
                self._read_stdin()
        while self.stdin_open or self.queue or self.jobs:
            while self.queue and len(self.jobs) < self.workers:
                self._start(self.queue.popleft())
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
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if job.must_kill:
                    self._kill(job)
                elif now >= job.deadline:
                    job.timed_out = True
                    self._kill(job)

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
        self.stdin_buffer += data
        *lines, self.stdin_buffer = self.stdin_buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            request = None
            try:
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("source"), str):
                    raise ValueError("a request needs a string 'source'")
                if not isinstance(request.setdefault("inputs", []), list):
                    raise ValueError("'inputs' must be a list")
                self.queue.append(request)
            except ValueError as exc:
                self._emit({"id": request.get("id") if isinstance(request, dict) else None,
                            "status": "error", "outputs": [], "call_errors": [],
                            "error": f"bad request: {exc}"})

    def _start(self, request: dict) -> None:
        try:
            timeout = float(request.get("timeout") or self.default_timeout)
        except (TypeError, ValueError):
            timeout = self.default_timeout
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                # Drop every reference to other programs' requests before running this one.
                self.queue.clear()
                self.jobs.clear()
                self.stdin_buffer = b""
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(output_w, 1)
                os.dup2(output_w, 2)
                os.dup2(result_w, _RESULT_FD)
                os.closerange(_RESULT_FD + 1, 1 << 16)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _child(request, dict(self.limits, timeout=timeout))
            finally:
                _EXIT(1)
        os.close(result_w)
        os.close(output_w)
        os.set_blocking(result_r, False)
        os.set_blocking(output_r, False)
        job = Job(request, pid, result_r, output_r, timeout)
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
        try:
            _, status = os.waitpid(job.pid, 0)
        except ChildProcessError:
            status = 0
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            job.exit_info = f"killed by signal {signal.Signals(signum).name}"
            job.cpu_limited = signum == signal.SIGXCPU
        else:
            job.exit_info = f"exit code {os.WEXITSTATUS(status)}"
        del self.jobs[job.pid]
        self._sweep()
        self._emit(job.answer())

    def _sweep(self) -> None:
        """Kill and reap every process that is not a running job: escaped grandchildren, fork
        bombs, daemons. As a subreaper (or PID 1) every descendant stays in our subtree."""
        if self.exclusive:
            try:  # PID 1 alone with its uid: everything we may signal is a program's leftover
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        live = set(self.jobs)
        for _ in range(1000):
            strays = [pid for pid in _children() if pid not in live]
            if not strays:
                break
            doomed = list(strays)
            for pid in strays:
                _descendants(pid, doomed)
            for pid in doomed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            for pid in strays:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self._wipe_state()

    def _wipe_state(self) -> None:
        """Remove what a program could leave for the next one: files in the scratch directories
        (only ours: anything else there belongs to someone else) and, in exclusive mode, IPC objects."""
        uid = os.getuid()
        for root in self.scratch:
            try:
                entries = list(os.scandir(root))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        _remove_tree(entry.path)
                except OSError:
                    pass
        if not self.exclusive:
            return
        for kind, remove in (("shm", lambda i: _libc.shmctl(i, 0, None)),
                             ("sem", lambda i: _libc.semctl(i, 0, 0)),
                             ("msg", lambda i: _libc.msgctl(i, 0, None))):
            try:
                with open(f"/proc/sysvipc/{kind}") as f:
                    ids = [int(line.split()[1]) for line in list(f)[1:] if line.strip()]
            except (OSError, ValueError, IndexError):
                continue
            for ipc_id in ids:  # IPC_RMID is 0 for all three
                remove(ipc_id)
        try:
            for name in os.listdir("/dev/mqueue"):
                try:
                    os.unlink(os.path.join("/dev/mqueue", name))
                except OSError:
                    pass
        except OSError:
            pass

    def _emit(self, answer: dict) -> None:
        data = (json.dumps(answer, allow_nan=False) + "\n").encode()
        while data:
            try:
                data = data[os.write(1, data):]
            except BlockingIOError:
                time.sleep(0.001)


def _remove_tree(path: str) -> None:
    """Delete a file or directory tree a program left, even if it made it unwritable."""
    def fix_and_retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target) or target, stat.S_IRWXU)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
            func(target)
        except OSError:
            pass

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
            shutil.rmtree(path, onerror=fix_and_retry)
        else:
            os.unlink(path)
    except OSError:
        pass


def _preload(modules) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> None:
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
                        help="PID 1 of a container, alone with its uid: kill all leftovers, wipe --scratch")
    parser.add_argument("--scratch", action="append", default=[],
                        help="a writable directory whose entries owned by our uid are deleted after every program")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 no in-container signal may reach us
    if args.exclusive and os.getpid() != 1:
        parser.error("--exclusive is only for a runner that is PID 1 of its own container")
    nproc = 0
    if args.nproc > 0 and os.getuid() != 0:
        # RLIMIT_NPROC counts every task of our uid, so count what already runs under it.
        nproc = args.nproc + (1 if args.exclusive else _count_own_tasks())
    limits = {"memory": args.memory_mb << 20, "fsize": args.fsize_mb << 20, "nproc": nproc}
    workers = 1 if args.exclusive else max(1, args.workers)
    if not args.no_preload:
        _preload(PRELOAD)
    Runner(workers, limits, args.timeout, args.exclusive, tuple(args.scratch)).serve(args.hello)


if __name__ == "__main__":
    main()
