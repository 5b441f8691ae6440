"""One running program as the supervisor sees it, and how its answer is decided."""

from __future__ import annotations

import os
import time

from .limits import CPU_POLL_MIN, MAX_OUTPUT_JSON, MAX_PRINTED, TAIL, wall_limit
from .protocol import strict_loads, tail


CPUS = len(os.sched_getaffinity(0))  # how fast a program's CPU time can grow, at most, per second


class Job:
    """One running program: its process, pipes and what it has reported so far. The supervisor
    keeps only the request's id and counts, never its source or inputs.

    Time: every call (and the module-level code before the first) gets `timeout` CPU seconds,
    counted from the CPU total the program reported with its previous line, or from what the
    supervisor measured when it read that line if that is less (`measure`: a program that reports
    more than it used gains nothing); the supervisor measures
    that total (cpu_due / cpu_over) no more often than it could have run out, and stops the call at
    the wall-clock backstop (limits.wall_limit) whatever it used.
    """

    def __init__(self, meta: dict, pid: int, result_fd: int, output_fd: int, timeout: float,
                 measure=lambda: None):
        self.meta = meta
        self.measure = measure  # the program's CPU total as the supervisor sees it now, or None
        self.cpu_base = 0.0
        self.pid = pid
        self.result_fd = result_fd
        self.output_fd = output_fd
        self.timeout = timeout
        self.wall = wall_limit(timeout)
        self.buffer = b""
        self.captured = b""
        self.printed = 0
        self.outputs = [None] * meta["calls"]
        self.call_errors = [None] * meta["calls"]
        self.done_calls = 0
        self.loaded = False  # the module-level code has run
        self.fatal = None
        self.fatal_at = 0  # calls done when the fatal event happened: only one during a test call decides
        self.timed_out = ""  # "cpu" or "wall": which limit stopped the call in progress
        self.exit_info = None
        self.cpu_limited = False
        self.open_fds = 2
        self.must_kill = False  # set when the program broke a limit the runner enforces itself
        self.pidfd = None  # readable once the program's main process has exited
        self._start_call(0.0)

    def _start_call(self, cpu_so_far: float) -> None:
        now = time.monotonic()
        self.call_cpu_start = cpu_so_far
        self.wall_deadline = now + self.wall
        self.next_cpu_check = now + self.timeout / CPUS

    @property
    def deadline(self) -> float:
        """When the supervisor must next look at this job's time."""
        return min(self.wall_deadline, self.next_cpu_check)

    def cpu_over(self, cpu_total: float, now: float) -> bool:
        """Given the program's CPU total now: has the call in progress used up its CPU limit? If
        not, the next look is when it could have, at the earliest."""
        left = self.timeout - (cpu_total - self.call_cpu_start)
        if left <= 0:
            return True
        self.next_cpu_check = now + max(CPU_POLL_MIN, left / CPUS)
        return False

    def _ended_over(self, cpu_total: float) -> bool:
        """A call (or the module-level code) that ended having used more than its CPU limit is a
        timeout all the same, however quickly it ended: what it used decides, not when we looked."""
        if cpu_total - self.call_cpu_start <= self.timeout:
            return False
        self.timed_out = "cpu"
        self.must_kill = True
        return True

    def _believed(self, reported: float) -> float:
        """The start of the next call's budget: the reported total, but never more than measured."""
        measured = self.measure()
        return reported if measured is None else min(reported, measured)

    def _forged(self, why: str = "the program wrote to the runner's result channel") -> None:
        if self.fatal is None:
            self.fatal, self.fatal_at = why, self.done_calls

    def on_result_bytes(self, data: bytes) -> None:
        if b"\n" not in data:
            self.buffer += data
            lines = []
        else:
            *lines, rest = (self.buffer + data).split(b"\n")
            self.buffer = rest
        if len(self.buffer) > MAX_OUTPUT_JSON + 4096:  # no real report line is this long
            self._forged("the program wrote too much to the runner's result channel")
            self.must_kill = True
            self.buffer = b""
        for line in lines:
            if self.loaded and self.done_calls >= len(self.outputs):  # every call reported: nothing may follow
                self._forged()
                self.must_kill = True
                return
            try:
                msg = strict_loads(line)
                if not self.loaded and "loaded" in msg:
                    if self._ended_over(float(msg["loaded"])):
                        return
                    self.loaded = True
                    self._start_call(self._believed(float(msg["loaded"])))
                    continue
                if "fatal" in msg:
                    self._forged(tail(str(msg["fatal"])))
                    continue
                i = int(msg["i"])
                if i != self.done_calls:
                    raise ValueError("calls reported out of order")
                error = msg.get("error")
                output = msg.get("out")
                cpu = float(msg["cpu"])
            except Exception:  # anything a program can write there is its own failure
                self._forged()
                continue
            if self._ended_over(cpu):
                return
            if error is not None:
                self.call_errors[i] = tail(str(error))
            else:
                self.outputs[i] = output
            self.done_calls += 1
            self._start_call(self._believed(cpu))

    def on_output_bytes(self, data: bytes) -> None:
        self.printed += len(data)
        self.captured = (self.captured + data)[-TAIL:]
        if self.printed > MAX_PRINTED and not self.must_kill:
            self._forged(f"the program printed more than {MAX_PRINTED >> 20} MiB")
            self.must_kill = True

    def answer(self) -> dict:
        """Only what happened before the last test call ended decides the status: a training call
        that fails, times out or prints too much only loses its own (and later) outputs."""
        num_tests = self.meta["num_tests"]
        test_errors = [e for e in self.call_errors[:num_tests] if e]
        completed_tests = min(self.done_calls, num_tests)
        what = "a call" if self.loaded else "the program's module-level code"
        if (self.timed_out or self.cpu_limited) and completed_tests < num_tests:
            status = "timeout"
            if self.timed_out == "cpu":
                error = f"{what} used more than its CPU time limit of {self.timeout:g} s"
            elif self.timed_out == "wall":
                error = (f"{what} ran for {self.wall:g} s of wall-clock time, the backstop of its {self.timeout:g} s "
                         f"CPU time limit (it slept, waited or got too little CPU): the sandbox stopped it")
            else:
                error = "the program used up its CPU time limit for the whole attempt (RLIMIT_CPU)"
        elif self.fatal and self.fatal_at < num_tests:
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
