"""Running programs through an Inspect AI sandbox (`sandbox().exec`), with the same runner and answers.

For `-T sandbox=inspect-docker` (Inspect's built-in `docker` sandbox on sandbox/compose.yaml, one
container per sample) or any other provider such as k8s whose image has the runner at
/opt/rps/runner; the default `-T sandbox=docker` does not come here (it uses the shared
DockerExecutor pool). One `exec` carries a whole batch as JSON lines; the runner answers in order
(one program at a time), so when the runner dies mid-batch the program it was running is the first
one without an answer: it runs again alone (an earlier program may have armed what killed the
runner) and is marked `error` if it kills that one too; the rest run again. A runner that
retires (`{"id": null, "retire": ...}`, after answering the program it blames) has started nothing
after it: the rest run again in a fresh runner.
"""

from __future__ import annotations

import os
from importlib.resources import files
from typing import Sequence

from rps_evals.execution import DEFAULT_TIMEOUT, Execution, Program
from rps_evals.execution.docker import LIMITS
from rps_evals.execution.image import sandbox_image
from rps_evals.execution.protocol import (
    RUNNER_IN_IMAGE,
    execution_from_answer,
    read_answer,
    runner_command,
    runner_failure,
    runner_request,
)

# Programs run as this user inside Inspect's docker sandbox: not the uid of the container's main
# process (10001, see sandbox/Dockerfile), so a program cannot kill the container from inside.
PROGRAM_USER = "10002:10002"


def compose_file() -> str:
    """sandbox/compose.yaml, pointed at the image built from this package's runner, with the
    executor's container limits (compose reads them from these variables; Inspect runs compose in
    this process's environment)."""
    os.environ.setdefault("RPS_EVALS_SANDBOX_IMAGE", sandbox_image())
    os.environ.update({
        "RPS_EVALS_SANDBOX_MEMORY": f"{LIMITS.container_mb}m",
        "RPS_EVALS_SANDBOX_PIDS": str(LIMITS.pids),
        "RPS_EVALS_SANDBOX_TMPFS": f"{LIMITS.tmpfs_mb}m",
        "RPS_EVALS_SANDBOX_SHM": f"{LIMITS.shm_mb}m",
        "RPS_EVALS_SANDBOX_TMPFS_INODES": str(LIMITS.tmpfs_inodes),
        "RPS_EVALS_SANDBOX_SHM_INODES": str(LIMITS.shm_inodes),
    })
    return str(files("rps_evals.sandbox") / "compose.yaml")


def _is_docker_sandbox(environment) -> bool:
    try:
        from inspect_ai.util import DockerSandboxEnvironment  # re-exported by recent Inspect versions
    except ImportError:
        from inspect_ai.util._sandbox.docker.docker import DockerSandboxEnvironment
    try:
        environment.as_type(DockerSandboxEnvironment)  # unwraps Inspect's event-logging proxy
        return True
    except TypeError:
        return False


async def run_in_inspect_sandbox(programs: Sequence[Program], timeout: float = DEFAULT_TIMEOUT, *,
                                 sandbox_name: str | None = None, memory_mb: int = LIMITS.memory_mb,
                                 user: str | None = None) -> list[Execution]:
    """Run `programs` (tests then train inputs, as Executor.run) in the current sample's sandbox.

    `user` defaults to PROGRAM_USER for Inspect's docker sandbox and to the sandbox's own default
    elsewhere (k8s and others may not support choosing one).
    """
    from inspect_ai.util import OutputLimitExceededError, sandbox

    environment = sandbox(sandbox_name) if sandbox_name else sandbox()
    if user is None and _is_docker_sandbox(environment):
        user = PROGRAM_USER
    results: list[Execution | None] = [None] * len(programs)
    todo = []
    lines: dict[int, str] = {}
    for i, program in enumerate(programs):
        if not program.source:
            results[i] = Execution.nothing_to_run(program)
        elif isinstance(line := runner_request(i, program, timeout), Execution):
            results[i] = line  # the runner would refuse it (too long, NaN inputs): never sent
        else:
            todo.append(i)
            lines[i] = line
    command = runner_command(RUNNER_IN_IMAGE, timeout=timeout, memory_mb=memory_mb)
    if not any("scipy" in (programs[i].source or "") for i in todo):
        command.append("--no-preload")  # a runner started per batch: import scipy only when used
    if user == PROGRAM_USER:  # our image: what programs leave in /tmp is theirs alone, delete it
        command += ["--scratch", "/tmp", "--scratch", "/dev/shm"]
    while todo:
        requests = [lines[i] for i in todo]
        calls = sum(len(programs[i].test_inputs) + len(programs[i].train_inputs) for i in todo)
        limit = int(timeout * calls + 2 * len(todo) + 30)  # per-call limits are the runner's; this stops a hang
        stdout, failure = "", ""
        try:
            result = await environment.exec(command, input="\n".join(requests) + "\n", timeout=limit, user=user)
            stdout = result.stdout
            if not result.success:
                failure = f"the sandbox runner exited with code {result.returncode}: {result.stderr[-500:]}"
        except TimeoutError as exc:
            stdout = getattr(exc, "truncated_output", None) or ""
            failure = f"the sandbox runner ran past {limit}s (stopped or hung)"
        except OutputLimitExceededError as exc:
            stdout = exc.truncated_output or ""
            failure = f"the runner's answers exceeded Inspect's output limit ({exc.limit_str})"
        answered, retired = 0, ""
        for line in stdout.splitlines():
            answer = read_answer(line)
            if answer is None:
                continue
            i = answer.get("id")
            if isinstance(i, int) and i in todo and results[i] is None:
                results[i] = execution_from_answer(programs[i], answer)
                answered += 1
            elif i is None and answer.get("retire"):
                retired = str(answer["retire"])
        remaining = [i for i in todo if results[i] is None]
        if not remaining:
            break
        if retired and answered:
            # The runner answered the program it blamed and retired: the rest never started, so
            # they run again in a fresh runner (as DockerExecutor does).
            todo = remaining
            continue
        failure = failure or (f"the sandbox runner retired: {retired}" if retired else "")
        failure = failure or "the sandbox runner ended without answering"
        if answered == 0 and len(remaining) > 1:
            # Nothing tells which program broke the runner: run each alone to find out.
            for i in remaining:
                results[i] = (await run_in_inspect_sandbox([programs[i]], timeout, sandbox_name=sandbox_name,
                                                           memory_mb=memory_mb, user=user))[0]
            break
        if answered:
            # What ended the runner may have been armed by a program it answered (a delayed signal):
            # the first unanswered program runs alone before it is blamed.
            results[remaining[0]] = (await run_in_inspect_sandbox([programs[remaining[0]]], timeout,
                                                                  sandbox_name=sandbox_name,
                                                                  memory_mb=memory_mb, user=user))[0]
        else:
            results[remaining[0]] = runner_failure(programs[remaining[0]], failure)
        todo = remaining[1:]
    return [r for r in results]  # type: ignore[misc]
