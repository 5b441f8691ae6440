"""Every limit the runner enforces, in one place (docs/sandbox.md lists them)."""

import math

TAIL = 2000  # characters of error text / captured output kept per attempt
MAX_OUTPUT_JSON = 1 << 20  # one call's return value, as JSON, may not exceed 1 MiB
MAX_CELLS = 100_000  # more list elements than this in a return value is an output-size error
MAX_PRINTED = 4 << 20  # stdout + stderr bytes a program may print before it is killed (error)
MAX_SOURCE_CHARS = 1 << 20  # a longer program is answered `error` without running (model output is far shorter)
MAX_REQUEST_BYTES = 64 << 20  # a longer request line is refused as a bad request
GC_WAIT = 0.5  # seconds the kernel's unix garbage collector gets to free what a dead program held
SWEEP_ROUNDS = 1000  # rounds of killing a program's leftover processes before the runner retires

# Time. `timeout` (the request's, else --timeout) is CPU seconds: what a call (and, separately, the
# program's module-level code) may use in all its threads and processes, measured by the kernel, so
# the load of the machine never decides a `timeout`. A call that uses little CPU but does not end
# (sleeps, waits, deadlocks, or is starved) is stopped by the wall-clock backstop, WALL_FACTOR times
# the CPU limit: a program at its CPU limit still ends in time with a tenth of a core.
WALL_FACTOR = 10
CPU_POLL_MIN = 0.02  # seconds between two CPU measurements of a running program, at least
NOFILE = 1024  # open files of a program: what python3 gets on a usual host (Pool(64) needs ~130)


def wall_limit(cpu_limit: float) -> float:
    """The wall-clock backstop of a call whose CPU limit is `cpu_limit` (rps_evals.execution.protocol
    repeats this rule for provenance)."""
    return WALL_FACTOR * cpu_limit


def request_timeout(request: dict, default: float) -> float:
    try:
        timeout = float(request.get("timeout") or default)
    except (TypeError, ValueError):
        return default
    return timeout if math.isfinite(timeout) and timeout > 0 else default
