"""Running model-written programs: the Executor interface, and how to get one.

All untrusted code runs in `sandbox/runner/`, a fork server: a clean zygote (it never holds a
request, an output or another program's source) forks every program, which then runs under its own
unprivileged uid with no capabilities, its own rlimits and per-call wall-clock limits; after each
program the runner checks its own state and retires if anything changed. JSON lines both ways,
never pickle. The backends differ only in where that runner lives:

- `docker` (the default, `docker.py`): inside hardened, network-less containers (docs/sandbox.md).
- `local` (`local.py`): a runner process on this machine. UNSAFE for untrusted code: rlimits are not
  a sandbox (a program can read your files and open sockets). Only for your own programs or tests.

`protocol.py` is the runner's request/answer format and command line, shared by both backends and
by the Inspect sandbox glue; `image.py` builds the sandbox image and cleans up leftovers.
Executors are thread-safe and keep their runner warm between `run` calls; use them as context
managers so the runner (and its container) is always cleaned up.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rps_evals.parse import Grid

DEFAULT_TIMEOUT = 2.0  # seconds per transform() call


@dataclass(frozen=True)
class Program:
    """One attempt's program and the inputs to call it on."""

    source: str | None
    test_inputs: Sequence[Grid]
    train_inputs: Sequence[Grid] = ()


@dataclass(frozen=True)
class Execution:
    """What running one Program gave. Outputs are raw returned values (validated later)."""

    status: str  # ok | error | timeout | no_program
    test_outputs: list[Any]
    train_outputs: list[Any] = field(default_factory=list)
    error: str = ""

    @staticmethod
    def nothing_to_run(program: Program) -> Execution:
        return Execution("no_program", [None] * len(program.test_inputs), [None] * len(program.train_inputs))


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run here (e.g. no Docker engine answers)."""


class Executor:
    """Runs Programs and returns Executions; thread-safe, warm between calls, a context manager.

    A backend implements `_submit` (send one request line to its runner, resolve the future with
    its Execution) and `close`; programs with nothing to run, and requests the runner would refuse,
    never reach it.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None):
        self.timeout = timeout
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False

    def run(self, programs: Sequence[Program], progress: Callable[[], None] | None = None) -> list[Execution]:
        """Run every program on its test inputs then its train inputs; results in input order."""
        futures = [self.submit(program) for program in programs]
        results = []
        for future in futures:
            results.append(future.result())
            if progress:
                progress()
        return results

    def submit(self, program: Program) -> Future:
        from rps_evals.execution import protocol  # protocol imports this module

        future: Future = Future()
        if not program.source:
            future.set_result(Execution.nothing_to_run(program))
            return future
        request_id = next(self._ids)
        line = protocol.request_line(request_id, program, self.timeout)
        if isinstance(line, Execution):  # the runner would refuse it: an error at once, never sent
            future.set_result(line)
        else:
            self._submit(request_id, line, program, future)
        return future

    def _submit(self, request_id: int, line: bytes, program: Program, future: Future) -> None:
        """Hand one request line (protocol.request_line) to the backend's runner."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()




def get_executor(name: str | None = None, **options) -> Executor:
    """The executor called `name`; None means the safe default, the Docker sandbox."""
    name = name or "docker"
    if name == "docker":
        from rps_evals.execution.docker import DockerExecutor

        return DockerExecutor(**options)
    if name == "local":
        from rps_evals.execution.local import LocalExecutor

        return LocalExecutor(**options)
    raise SandboxUnavailable(f"unknown sandbox {name!r}; choose one of docker, local")


_SHARED: dict[tuple[str | None, float], Executor] = {}
_SHARED_LOCK = threading.Lock()


def shared_executor(sandbox: str | None, timeout: float = DEFAULT_TIMEOUT) -> Executor:
    """One warm executor per (sandbox, timeout) for the whole process, closed at exit: front ends
    that score sample by sample (Inspect, lm-eval) reuse it instead of starting a runner each time."""
    with _SHARED_LOCK:
        key = (sandbox, timeout)
        if key not in _SHARED:
            _SHARED[key] = get_executor(sandbox, timeout=timeout)
        return _SHARED[key]


@atexit.register
def close_shared_executors() -> None:
    """Close every shared executor (at exit, and at the end of an Inspect run); the next
    shared_executor call starts a fresh one."""
    with _SHARED_LOCK:
        executors = list(_SHARED.values())
        _SHARED.clear()
    for executor in executors:
        executor.close()
