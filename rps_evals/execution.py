"""Running model-written programs: the Executor interface and its backends.

All untrusted code runs in `sandbox/runner.py`, a fork server that gives every program a fresh
process with rlimits and per-call wall-clock limits and speaks JSON lines (never pickle). The
backends differ only in where that runner lives:

- `docker` (the default): inside a hardened, network-less container (see sandbox/).
- `local`: a runner process on this machine. UNSAFE for untrusted code: rlimits are not a sandbox
  (a program can read your files and open sockets). Use it only for your own programs or tests.

Executors are thread-safe and keep their runner warm between `run` calls; use them as context
managers so the runner (and its container) is always cleaned up.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Callable, Iterable, Sequence

from rps_evals.parse import Grid

STATUSES = ("ok", "error", "timeout", "no_program")
DEFAULT_TIMEOUT = 2.0  # seconds per transform() call
RUNNER_PATH = str(files("rps_evals.sandbox") / "runner.py")


@dataclass(frozen=True)
class Program:
    """One attempt's program and the inputs to call it on."""

    source: str | None
    test_inputs: Sequence[Grid]
    train_inputs: Sequence[Grid] = ()


@dataclass(frozen=True)
class Execution:
    """What running one Program gave. Outputs are raw returned values (validated later)."""

    status: str  # one of STATUSES
    test_outputs: list[Any]
    train_outputs: list[Any] = field(default_factory=list)
    error: str = ""

    @staticmethod
    def nothing_to_run(program: Program) -> Execution:
        return Execution("no_program", [None] * len(program.test_inputs), [None] * len(program.train_inputs))


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run here (e.g. no Docker engine answers)."""


class Executor:
    """Runs programs through a runner process reached over a pair of byte streams."""

    name = "abstract"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None):
        self.timeout = timeout
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, tuple[Future, Program]] = {}
        self._stdin = None
        self._closed = False

    # -- what a backend provides ------------------------------------------------------------
    def _spawn(self) -> tuple[Any, Any]:
        """Start a runner; return (writable binary stream, readable binary stream)."""
        raise NotImplementedError

    def _stop(self) -> None:
        """Stop the runner started by _spawn (idempotent)."""

    # -- the interface ----------------------------------------------------------------------
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
        future: Future = Future()
        if not program.source:
            future.set_result(Execution.nothing_to_run(program))
            return future
        inputs = list(program.test_inputs) + list(program.train_inputs)
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            request_id = next(self._ids)
            request = {"id": request_id, "source": program.source, "inputs": inputs,
                       "num_tests": len(program.test_inputs), "timeout": self.timeout}
            self._pending[request_id] = (future, program)
            try:
                if self._stdin is None:
                    self._start_runner()
                self._stdin.write((json.dumps(request) + "\n").encode())
                self._stdin.flush()
            except (OSError, ValueError, SandboxUnavailable) as exc:
                self._pending.pop(request_id, None)
                if isinstance(exc, SandboxUnavailable):
                    raise
                self._runner_died(f"could not send to the sandbox runner: {exc}")
                future.set_result(_runner_failure(program, f"sandbox runner unavailable: {exc}"))
        return future

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stdin, self._stdin = self._stdin, None
        if stdin is not None:
            try:
                stdin.close()
            except OSError:
                pass
        self._stop()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _start_runner(self) -> None:
        stdin, stdout = self._spawn()
        self._stdin = stdin
        threading.Thread(target=self._read_answers, args=(stdout, stdin), daemon=True).start()

    def _read_answers(self, stdout, stdin) -> None:
        for line in stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                entry = self._pending.pop(answer.get("id"), None)
            if entry is not None:
                entry[0].set_result(_execution_from_answer(entry[1], answer))
        with self._lock:
            if self._stdin is stdin:  # the runner ended while we still used it
                self._stdin = None
                self._runner_died("the sandbox runner exited unexpectedly")

    def _runner_died(self, why: str) -> None:
        """Fail only the programs that were in flight; the next submit starts a new runner."""
        pending, self._pending = self._pending, {}
        for future, program in pending.values():
            if not future.done():
                future.set_result(_runner_failure(program, why))


def _runner_failure(program: Program, why: str) -> Execution:
    return Execution("error", [None] * len(program.test_inputs), [None] * len(program.train_inputs), why)


def _execution_from_answer(program: Program, answer: dict) -> Execution:
    status = answer.get("status")
    if status not in ("ok", "error", "timeout"):
        return _runner_failure(program, f"malformed runner answer: {str(answer)[:200]}")
    outputs = list(answer.get("outputs") or [])
    n = len(program.test_inputs)
    outputs += [None] * (n + len(program.train_inputs) - len(outputs))
    return Execution(status, outputs[:n], outputs[n:], str(answer.get("error") or ""))


class LocalExecutor(Executor):
    """UNSAFE: runs programs in a runner subprocess on this machine, limited only by rlimits."""

    name = "local"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, memory_mb: int = 1024):
        super().__init__(timeout, workers)
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None

    def _spawn(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", RUNNER_PATH, "--workers", str(self.workers),
             "--timeout", str(self.timeout), "--memory-mb", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/",
        )
        return self._proc.stdin, self._proc.stdout

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


BACKENDS: dict[str, type[Executor]] = {"local": LocalExecutor}


def get_executor(name: str | None = None, **options) -> Executor:
    """The executor called `name`; None means the safe default, the Docker sandbox."""
    name = name or "docker"
    if name not in BACKENDS:
        raise SandboxUnavailable(
            f"unknown sandbox {name!r}; choose one of {', '.join(sorted(BACKENDS))}"
            + ("" if "docker" in BACKENDS else " (the docker backend is not installed yet)")
        )
    return BACKENDS[name](**options)


def run_programs(programs: Iterable[Program], sandbox: str | None = None, **options) -> list[Execution]:
    """One-shot convenience: start an executor, run `programs`, clean up."""
    with get_executor(sandbox, **options) as executor:
        return executor.run(list(programs))
