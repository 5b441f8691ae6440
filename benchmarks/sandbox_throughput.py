"""Sandbox throughput: the warm Docker executor vs a bare fork per program and a container per program.

Programs are realistic transforms for real ARC-AGI-1 training tasks (tests/sandbox_programs.py:
numpy, scipy and pure-Python solvers, wrong ideas, crashes, endless loops), each run on its task's
test and training inputs, always in a fresh process. Modes:

  (0) bare fork         the physical limit: a host process with numpy (and the runner's preloads)
                        warm forks one child per program, `--workers` at a time, no container, no
                        limits, no isolation; the child runs the program and writes its outputs
  (a) warm executor     rps_evals.execution.docker.DockerExecutor: long-lived containers, one fork per program
      a-stream          all programs submitted at once (how `rps-evals score` uses it): throughput
      a-closed          `--workers` clients, each waiting for its program before sending the next:
                        per-program latency, comparable with (b) and (c)
      a-mixed           a-stream on a mix that also has endless loops (`--timeout-share`)
  (b) docker run        `docker run --rm -i <same hardening>` per program, `--workers` at a time
  (c) docker exec       `docker exec -i` of the runner per program into one long-lived container,
                        as Inspect's docker sandbox does, `--workers` at a time

Usage: python benchmarks/sandbox_throughput.py [--programs 2000] [--per-container 60] [--json out.json]
(0) and a-stream alternate over `--rounds` slices of one workload, so a shared machine's load falls
on both alike; the ratio a-stream / (0) is what docs/sandbox.md holds the sandbox to (>= 0.8).
"""

from __future__ import annotations

import argparse
import json
import select
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sandbox_programs import workload  # noqa: E402

from rps_evals.execution import Program  # noqa: E402
from rps_evals.execution.docker import DockerExecutor  # noqa: E402
from rps_evals.execution.image import LABEL, docker_client, ensure_image  # noqa: E402
from rps_evals.execution.protocol import RUNNER_IN_IMAGE, execution_from_answer  # noqa: E402
from rps_evals.sandbox.runner import main as runner_main, protocol as runner  # noqa: E402  (numpy, PRELOAD and to_jsonable, as in the sandbox)

HARDENING = ["--network", "none", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=64m,mode=1777",
             "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--pids-limit", "128",
             "--memory", "1280m", "--memory-swap", "1280m", "--log-driver", "none",
             "--label", f"{LABEL}=1", "--label", f"{LABEL}.pid={os.getpid()}"]


def request_line(program: Program, timeout: float) -> str:
    return json.dumps({"id": 0, "source": program.source, "inputs": list(program.test_inputs) + list(program.train_inputs),
                       "num_tests": len(program.test_inputs), "timeout": timeout}) + "\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def closed_loop(programs: list[Program], workers: int, run_one) -> tuple[float, list[float], list[str]]:
    """`workers` clients, each running its next program only when the previous one answered."""
    latencies = [0.0] * len(programs)
    statuses = [""] * len(programs)
    next_index = iter(range(len(programs)))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            start = time.perf_counter()
            statuses[i] = run_one(programs[i])
            latencies[i] = time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(workers):
            pool.submit(client)
    return time.perf_counter() - start, latencies, statuses


def _bare_child(program: Program, fd: int) -> None:
    """Run one program in this forked child and write its status: what the runner does, no more."""
    status = "ok"
    try:
        namespace = {"__name__": "__bare__"}
        exec(compile(program.source, "<program>", "exec"), namespace)
        outputs = []
        for i, grid in enumerate(list(program.test_inputs) + list(program.train_inputs)):
            try:
                outputs.append(runner.to_jsonable(namespace["transform"](json.loads(json.dumps(grid)))))
            except Exception:
                outputs.append(None)
                if i < len(program.test_inputs):
                    status = "error"
        data = json.dumps({"status": status, "outputs": outputs}, allow_nan=False).encode()
    except BaseException:
        data = b'{"status": "error"}'
    while data:
        data = data[os.write(fd, data):]
    os._exit(0)


def bare_fork(programs: list[Program], workers: int) -> tuple[float, list[str]]:
    """(0): one fork per program from this warm process, `workers` children at a time."""
    runner_main.preload(runner_main.PRELOAD)
    statuses = [""] * len(programs)
    running: dict[int, list] = {}  # read end -> [index, pid, chunks]
    todo = iter(range(len(programs)))
    start = time.perf_counter()
    exhausted = False
    while not exhausted or running:
        while not exhausted and len(running) < workers:
            i = next(todo, None)
            if i is None:
                exhausted = True
                break
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                _bare_child(programs[i], write_end)
            os.close(write_end)
            running[read_end] = [i, pid, []]
        if not running:
            break
        for fd in select.select(list(running), [], [])[0]:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                running[fd][2].append(chunk)
                continue
            os.close(fd)
            i, pid, chunks = running.pop(fd)
            os.waitpid(pid, 0)
            statuses[i] = json.loads(b"".join(chunks))["status"]
    return time.perf_counter() - start, statuses


def streamed(executor: DockerExecutor, programs: list[Program]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    results = executor.run(programs)
    return time.perf_counter() - start, [r.status for r in results]


def docker_cli(args: list[str], program: Program, timeout: float) -> str:
    """One runner per program; it preloads scipy only for a program that imports it (as the Inspect
    helper does), so (b) and (c) pay no more start-up than they need."""
    if "scipy" not in program.source:
        args = args + ["--no-preload"]
    done = subprocess.run(["docker", *args], input=request_line(program, timeout), capture_output=True, text=True)
    for line in done.stdout.splitlines():
        answer = json.loads(line)
        if answer.get("id") == 0:
            return execution_from_answer(program, answer).status
    return "error"


def row(name: str, n: int, wall: float, latencies: list[float] | None) -> dict:
    result = {"mode": name, "programs": n, "wall_s": round(wall, 2), "programs_per_s": round(n / wall, 1)}
    if latencies:
        result["p50_ms"] = round(1000 * statistics.median(latencies), 1)
        result["p99_ms"] = round(1000 * percentile(latencies, 0.99), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=2000, help="programs for the warm executor")
    parser.add_argument("--per-container", type=int, default=60, help="programs for (b) and (c) each")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs at once, every mode")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per transform call")
    parser.add_argument("--timeout-share", type=float, default=0.01, help="endless loops in the a-mixed workload")
    parser.add_argument("--rounds", type=int, default=4, help="slices in which (0) and a-stream alternate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    client = docker_client()
    image = ensure_image(quiet=True)
    clean = [p for _, _, p in workload(args.programs, args.seed, timeout_share=0.0)]
    mixed = [p for _, _, p in workload(args.programs, args.seed + 1, timeout_share=args.timeout_share)]
    few = clean[: args.per_container]
    rows = []

    bare_fork(clean[:50], args.workers)  # warm-up
    with DockerExecutor(timeout=args.timeout, workers=args.workers, image=image) as executor:
        start = time.perf_counter()
        executor.start()
        startup = time.perf_counter() - start
        executor.run(clean[:50])  # warm-up
        # (0) and a-stream alternate over `--rounds` slices of the same workload, so that the load of
        # other jobs on a shared machine falls on both alike; their sums make the ratio.
        bare_wall = stream_wall = 0.0
        bare_statuses, stream_statuses = [], []
        size = -(-len(clean) // args.rounds)
        for at in range(0, len(clean), size):
            part = clean[at:at + size]
            wall, statuses = bare_fork(part, args.workers)
            bare_wall, bare_statuses = bare_wall + wall, bare_statuses + statuses
            wall, statuses = streamed(executor, part)
            stream_wall, stream_statuses = stream_wall + wall, stream_statuses + statuses
        rows.append(row("0         bare fork per program on the host", len(clean), bare_wall, None))
        rows.append(row("a-stream  warm executor, all submitted", len(clean), stream_wall, None))
        wall, latencies, closed_statuses = closed_loop(
            clean[: max(args.per_container, 400)], args.workers, lambda p: executor.submit(p).result().status)
        rows.append(row("a-closed  warm executor, one at a time per worker", len(latencies), wall, latencies))
        wall, mixed_statuses = streamed(executor, mixed)
        rows.append(row(f"a-mixed   warm executor, {args.timeout_share:.1%} endless loops", len(mixed), wall, None))

    run_args = ["run", "--rm", "-i", *HARDENING, "--user", "10002:10002", image,
                "python3", "-I", RUNNER_IN_IMAGE, "--workers", "1", "--timeout", str(args.timeout)]
    wall, latencies, run_statuses = closed_loop(few, args.workers, lambda p: docker_cli(run_args, p, args.timeout))
    rows.append(row("b         docker run per program", len(few), wall, latencies))

    holder = client.containers.run(image, ["sleep", "infinity"], detach=True, init=True, network_mode="none",
                                   read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=64m,mode=1777"},
                                   cap_drop=["ALL"], security_opt=["no-new-privileges:true"], pids_limit=256,
                                   mem_limit="2g", user="10001:10001", labels={LABEL: "1", f"{LABEL}.pid": str(os.getpid())})
    try:
        exec_args = ["exec", "-i", "--user", "10002:10002", holder.id,
                     "python3", "-I", RUNNER_IN_IMAGE, "--workers", "1", "--timeout", str(args.timeout)]
        wall, latencies, exec_statuses = closed_loop(few, args.workers, lambda p: docker_cli(exec_args, p, args.timeout))
        rows.append(row("c         docker exec per program (Inspect-style)", len(few), wall, latencies))
    finally:
        holder.remove(force=True)

    agree = stream_statuses[: len(few)] == run_statuses == exec_statuses == closed_statuses[: len(few)]
    by_mode = {r["mode"].split()[0]: r["programs_per_s"] for r in rows}
    ratios = {
        "a-stream / 0 (bare fork, the physical limit)": round(by_mode["a-stream"] / by_mode["0"], 2),
        "a-stream / b (docker run)": round(by_mode["a-stream"] / by_mode["b"], 1),
        "a-stream / c (docker exec)": round(by_mode["a-stream"] / by_mode["c"], 1),
        "a-closed / b (docker run)": round(by_mode["a-closed"] / by_mode["b"], 1),
        "a-closed / c (docker exec)": round(by_mode["a-closed"] / by_mode["c"], 1),
    }
    machine = {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
               "kernel": platform.release(), "docker": client.version().get("Version"), "image": image,
               "workers": args.workers, "timeout_s": args.timeout}
    counts = {s: stream_statuses.count(s) for s in sorted(set(stream_statuses))}
    mixed_counts = {s: mixed_statuses.count(s) for s in sorted(set(mixed_statuses))}

    print(f"machine: {machine}")
    print(f"executor startup (all containers ready): {startup:.2f} s")
    print(f"statuses a-stream {counts}, a-mixed {mixed_counts}; same statuses in every mode: {agree}; "
          f"bare fork gives the same statuses: {bare_statuses == stream_statuses}")
    print(f"\n{'mode':52s} {'programs':>8s} {'wall s':>8s} {'prog/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for r in rows:
        print(f"{r['mode']:52s} {r['programs']:8d} {r['wall_s']:8.2f} {r['programs_per_s']:8.1f} "
              f"{r.get('p50_ms', ''):>8} {r.get('p99_ms', ''):>8}")
    print("\nratios (programs/s): " + ", ".join(f"{k} = {v}x" for k, v in ratios.items()))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "startup_s": round(startup, 2), "rows": rows,
                                         "ratios": ratios, "statuses_agree": agree, "statuses": counts,
                                         "mixed_statuses": mixed_counts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
