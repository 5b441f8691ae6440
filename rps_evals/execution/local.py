"""UNSAFE backend: the runner as a subprocess of this machine, limited only by rlimits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from importlib import metadata
from importlib.resources import files

from rps_evals.execution import DEFAULT_TIMEOUT, Executor, Program
from rps_evals.execution.protocol import (
    RUNNER_PATH,
    execution_from_answer,
    read_answer,
    request_line,
    runner_command,
    runner_failure,
)


def image_pins() -> dict[str, str]:
    """{package: version} the sandbox image installs (sandbox/requirements.txt)."""
    text = (files("rps_evals.sandbox") / "requirements.txt").read_text(encoding="utf-8")
    return dict(line.split("==") for line in (raw.split("#")[0].strip() for raw in text.splitlines()) if line)


def version_differences() -> list[str]:
    """'numpy 2.2.0 here, 2.4.6 in the image' for each pinned package this interpreter has in
    another version (or lacks)."""
    differences = []
    for package, pinned in image_pins().items():
        try:
            here = metadata.version(package)
        except metadata.PackageNotFoundError:
            here = "none"
        if here != pinned:
            differences.append(f"{package} {here} here, {pinned} in the sandbox image")
    return differences


_warned: list[bool] = []


def warn_about_versions() -> None:
    """Once per process: programs run by this machine's python3 may compute other answers than in the
    image (numpy 1 vs 2 changes results, not only errors), so say where they differ."""
    differences = version_differences()
    if differences and not _warned:
        _warned.append(True)
        print(f"WARNING: --sandbox local runs programs with this machine's packages ({'; '.join(differences)}): "
              "their outputs, and so the scores, may differ from the Docker sandbox's", file=sys.stderr)


class LocalExecutor(Executor):
    """UNSAFE: runs programs in a runner subprocess on this machine, limited only by rlimits.

    One runner process, started on first use; its answers are read by a thread and matched to
    futures by id. Requests are written under their own lock, never the one the reader needs, so
    no size of request or answer can block both ends. If the runner dies, only the programs in
    flight fail and the next submit starts another; if it retires (a program changed its state,
    which the runner checks after every program), the programs it had not answered run again on
    a fresh one.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, memory_mb: int = 1024):
        super().__init__(timeout, workers)
        warn_about_versions()
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, tuple[Future, Program]] = {}
        self._send_lock = threading.Lock()

    def _submit(self, request_id: int, line: bytes, program: Program, future: Future) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            self._pending[request_id] = (future, program)
            try:
                if self._proc is None:
                    self._start_runner()
            except OSError as exc:
                self._runner_died(f"could not start the sandbox runner: {exc}")
                return
            proc = self._proc
        self._send(proc, [line])

    def _send(self, proc: subprocess.Popen, lines: list[bytes]) -> None:
        with self._send_lock:
            try:
                for line in lines:
                    proc.stdin.write(line)
                proc.stdin.flush()
            except (OSError, ValueError):
                pass  # the runner is gone: its reader fails or re-sends what it had not answered

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            with self._send_lock:
                proc.stdin.close()  # the runner finishes what it has, answers, and exits
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _start_runner(self) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            [sys.executable, *runner_command(RUNNER_PATH, timeout=self.timeout, memory_mb=self.memory_mb,
                                             workers=self.workers)[1:]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/",
        )
        self._proc = proc
        threading.Thread(target=self._read_answers, args=(proc,), daemon=True).start()

    def _read_answers(self, proc: subprocess.Popen) -> None:
        retired = False
        for line in proc.stdout:
            answer = read_answer(line)
            if answer is None:
                continue
            if answer.get("retire"):
                retired = True
                continue
            with self._lock:
                entry = self._pending.pop(answer.get("id"), None)
                if entry is None and answer.get("id") is None and self._pending:
                    # a request the runner could not read (we never send one): the oldest gets it
                    entry = self._pending.pop(next(iter(self._pending)))
            if entry is not None:
                entry[0].set_result(execution_from_answer(entry[1], answer))
        proc.wait()
        again: list[bytes] = []
        with self._lock:
            if self._proc is not proc:  # closed, or already replaced
                return
            self._proc = None
            if not retired:
                self._runner_died("the sandbox runner exited unexpectedly")
                return
            try:
                self._start_runner()
            except OSError as exc:
                self._runner_died(f"could not restart the sandbox runner: {exc}")
                return
            again = [request_line(request_id, program, self.timeout)  # sent once: never a refusal
                     for request_id, (_, program) in self._pending.items()]
            fresh = self._proc
        self._send(fresh, again)

    def _runner_died(self, why: str) -> None:
        """Fail only the programs that were in flight (call with the lock held)."""
        pending, self._pending = self._pending, {}
        for future, program in pending.values():
            if not future.done():
                future.set_result(runner_failure(program, why))
