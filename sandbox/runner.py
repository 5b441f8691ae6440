"""Fork server that runs untrusted `transform(grid)` programs, one fresh child process each.

Standard library + numpy only: this file runs inside the sandbox container (and, for the explicitly
unsafe `local` backend, on the host). It imports numpy once, then for every request forks a child
that sets rlimits, execs the program and calls `transform` on each input. The child reports each
call as one JSON line on a private pipe; the parent enforces a wall-clock limit per call, drains and
caps the child's stdout/stderr, kills the child's process group when it is done, and answers with
one JSON line. Nothing is ever unpickled: requests and answers are JSON lines.

Request (stdin):  {"id": ..., "source": str, "inputs": [grid, ...], "num_tests": int, "timeout": float}
Answer (stdout):  {"id": ..., "status": "ok"|"error"|"timeout", "outputs": [value|null, ...],
                   "call_errors": [str|null, ...], "error": str}
`inputs` are the test inputs followed by the training inputs; `status` is decided by the first
`num_tests` calls only (train calls feed train verification, not the status). A timed-out or
crashed child ends the attempt: later calls get no output.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import selectors
import signal
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

TAIL = 2000  # characters of error text / captured output kept per attempt
MAX_OUTPUT_JSON = 1 << 20  # one call's return value, as JSON, may not exceed 1 MiB
MAX_CELLS = 100_000  # more list elements than this in a return value is an output-size error
_RESULT_FD = 3


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
    if np is not None and isinstance(value, np.ndarray):
        if value.size > MAX_CELLS:
            raise OutputTooLarge(f"returned array has {value.size} elements")
        value = value.tolist()
    elif np is not None and isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise OutputTooLarge(f"returned value has more than {MAX_CELLS} elements")
        return [to_jsonable(v, budget) for v in value]
    raise TypeError(f"transform returned a non-serialisable {type(value).__name__}")


def _write_line(fd: int, obj) -> None:
    data = (json.dumps(obj, allow_nan=False) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _child(request: dict, limits: dict) -> None:
    """Runs in the forked child: never returns."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
        cpu = int(limits["timeout"] * len(request["inputs"])) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if os.getuid() != 0:  # root ignores RLIMIT_NPROC; the container's pids limit covers it
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    except (ValueError, OSError) as exc:
        _write_line(_RESULT_FD, {"fatal": f"setting limits failed: {exc}"})
        os._exit(1)
    inputs = [json.dumps(grid) for grid in request["inputs"]]  # each call gets a fresh copy
    namespace = {"__name__": "__rps_program__", "__builtins__": __builtins__}
    try:
        exec(compile(request["source"], "<program>", "exec"), namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the program defines no callable transform(grid)")
    except BaseException as exc:
        trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        _write_line(_RESULT_FD, {"fatal": _tail("".join(trace))})
        os._exit(0)
    for i, grid_json in enumerate(inputs):
        try:
            try:
                returned = transform(json.loads(grid_json))
            except BaseException as exc:  # SystemExit and KeyboardInterrupt are program errors too
                trace = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
                raise CallFailed("".join(trace)) from None
            try:
                output = to_jsonable(returned)
            except RecursionError:
                raise TypeError("transform returned a self-referencing or too deeply nested value") from None
            line = json.dumps({"i": i, "out": output}, allow_nan=False) + "\n"
            if len(line) > MAX_OUTPUT_JSON:
                raise OutputTooLarge(f"returned value is {len(line)} bytes as JSON")
            data = line.encode()
            while data:
                data = data[os.write(_RESULT_FD, data):]
        except BaseException as exc:
            message = _tail(str(exc) if isinstance(exc, CallFailed) else f"{type(exc).__name__}: {exc}")
            try:
                _write_line(_RESULT_FD, {"i": i, "error": message})
            except BaseException:
                os._exit(1)
    os._exit(0)


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
        self.outputs = [None] * len(request["inputs"])
        self.call_errors = [None] * len(request["inputs"])
        self.done_calls = 0
        self.fatal = None
        self.timed_out = False
        self.exit_info = None
        self.open_fds = 2

    def on_result_bytes(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
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
        self.captured = (self.captured + data)[-TAIL:]

    def answer(self) -> dict:
        num_tests = int(self.request.get("num_tests", len(self.request["inputs"])))
        test_errors = [e for e in self.call_errors[:num_tests] if e]
        completed_tests = min(self.done_calls, num_tests)
        if self.timed_out and completed_tests < num_tests:
            status, error = "timeout", f"a call ran past its {self.timeout:g}s limit"
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


def _set_subreaper() -> None:
    """Orphans of programs (double forks, setsid) are re-parented to us so we can kill them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _reap_orphans(live: set[int]) -> None:
    """Kill and reap any child of ours that is not a running job (escaped grandchildren)."""
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid in live or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass


class Runner:
    def __init__(self, workers: int, limits: dict, default_timeout: float):
        self.workers = workers
        self.limits = limits
        self.default_timeout = default_timeout
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pid
        self.queue: list[dict] = []
        self.stdin_open = True
        self.stdin_buffer = b""

    def serve(self) -> None:
        _set_subreaper()
        try:
            self.selector.register(0, selectors.EVENT_READ, ("stdin", None))
            os.set_blocking(0, False)
        except PermissionError:  # a regular file cannot be polled: it is all there, read it now
            while self.stdin_open:
                self._read_stdin()
        while self.stdin_open or self.queue or self.jobs:
            while self.queue and len(self.jobs) < self.workers:
                self._start(self.queue.pop(0))
            timeout = None
            if self.jobs:
                timeout = max(0.0, min(j.deadline for j in self.jobs.values()) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                kind, job = key.data
                if kind == "stdin":
                    self._read_stdin()
                else:
                    self._read_job(job, key.fd, kind)
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if job.open_fds and now >= job.deadline:
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
            try:
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("source"), str):
                    raise ValueError("a request needs a string 'source'")
                request.setdefault("inputs", [])
                self.queue.append(request)
            except ValueError as exc:
                self._emit({"id": None, "status": "error", "outputs": [], "call_errors": [],
                            "error": f"bad request: {exc}"})

    def _start(self, request: dict) -> None:
        timeout = float(request.get("timeout") or self.default_timeout)
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(output_w, 1)
                os.dup2(output_w, 2)
                os.dup2(result_w, _RESULT_FD)
                os.closerange(_RESULT_FD + 1, 1 << 16)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                _child(request, dict(self.limits, timeout=timeout))
            finally:
                os._exit(1)
        os.close(result_w)
        os.close(output_w)
        os.set_blocking(result_r, False)
        os.set_blocking(output_r, False)
        job = Job(request, pid, result_r, output_r, timeout)
        self.jobs[pid] = job
        self.selector.register(result_r, selectors.EVENT_READ, ("result", job))
        self.selector.register(output_r, selectors.EVENT_READ, ("output", job))

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
        try:
            os.killpg(job.pid, signal.SIGKILL)  # the program and anything it forked
        except OSError:
            pass
        try:
            _, status = os.waitpid(job.pid, 0)
        except ChildProcessError:
            status = 0
        if os.WIFSIGNALED(status):
            job.exit_info = f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            job.exit_info = f"exit code {os.WEXITSTATUS(status)}"
        del self.jobs[job.pid]
        _reap_orphans(set(self.jobs))
        self._emit(job.answer())

    def _emit(self, answer: dict) -> None:
        data = (json.dumps(answer, allow_nan=False) + "\n").encode()
        while data:
            try:
                data = data[os.write(1, data):]
            except BlockingIOError:
                time.sleep(0.001)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs run at once")
    parser.add_argument("--timeout", type=float, default=2.0, help="default seconds per transform call")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per program")
    parser.add_argument("--fsize-mb", type=int, default=1, help="largest file a program may write")
    parser.add_argument("--nproc", type=int, default=64, help="process limit (non-root only)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    limits = {"memory": args.memory_mb << 20, "fsize": args.fsize_mb << 20, "nproc": args.nproc}
    Runner(max(1, args.workers), limits, args.timeout).serve()


if __name__ == "__main__":
    main()
