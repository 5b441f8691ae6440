"""Sandbox throughput: the warm Docker executor vs a bare fork per program and a container per program.

Programs are realistic transforms for real ARC-AGI-1 training tasks (tests/sandbox_programs.py:
numpy, scipy and pure-Python solvers, wrong ideas, crashes, endless loops), each run on its task's
test and training inputs, always in a fresh process. Modes:

  (0) bare fork         the honest limit, the cheapest fork per program: `--workers` clean python3
                        parents with numpy and the runner's preloads warm, each forking one child per
                        program of its share; the child runs the program on fresh copies of its
                        inputs and writes JSON to a pipe. No container, limits, seccomp or checks.
  (a) warm executor     rps_evals.execution.docker.DockerExecutor: long-lived containers, one fork per program
      a-stream          all programs submitted at once (how `rps-evals score` uses it): throughput
      a-closed          `--workers` clients, each waiting for its program before sending the next:
                        per-program latency, comparable with (b) and (c)
      a-mixed           a-stream on a mix that also has endless loops (`--timeout-share`)
  (b) docker run        `docker run --rm -i <same hardening>` per program, `--workers` at a time
  (c) docker exec       `docker exec -i` of the runner per program into one long-lived container,
                        as Inspect's docker sandbox does, `--workers` at a time

Also printed: where a program's time goes (each step the runner adds to (0), timed alone in a
container of the image) and the status flips of CPU-heavy honest programs scored quiet and under
two busy loops (the per-call limit is CPU time: there should be none).

Usage: python benchmarks/sandbox_throughput.py [--programs 2000] [--per-container 60] [--json out.json]
(0) and a-stream alternate over `--rounds` slices of one workload, so a shared machine's load falls
on both alike; the ratio a-stream / (0) is what docs/sandbox.md holds the sandbox to (>= 0.8).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sandbox_programs import workload  # noqa: E402

from rps_evals.execution import DEFAULT_TIMEOUT, Program  # noqa: E402
from rps_evals.execution.docker import DockerExecutor  # noqa: E402
from rps_evals.execution.image import LABEL, docker_client, ensure_image  # noqa: E402
from rps_evals.execution.protocol import RUNNER_IN_IMAGE, execution_from_answer  # noqa: E402
from rps_evals.execution.protocol import RUNNER_PATH  # noqa: E402

RUNNER_DIR = Path(RUNNER_PATH).parent  # the runner package's parent: (0) imports its PRELOAD and to_jsonable

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


# (0): one parent per worker, a clean python3 with what the runner's zygote has warm (numpy, the
# runner's PRELOAD), forking one child per program of its share; the child runs the program on fresh
# copies of its inputs, converts the outputs as the runner does and writes JSON to a pipe. Nothing
# else: no limits, no seccomp, no sweep, cleanup or state check. The cheapest honest fork per program.
BARE_PARENT = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from runner import main as runner_main, protocol
import gc

runner_main.preload(runner_main.PRELOAD)
share = json.loads(sys.stdin.readline())
gc.freeze()  # as the runner does before its zygote forks
print("ready", flush=True)
sys.stdin.readline()  # go


def child(source, inputs, num_tests, fd):
    status = "ok"
    try:
        namespace = {"__name__": "__bare__"}
        exec(compile(source, "<program>", "exec"), namespace)
        outputs = []
        for i, grid in enumerate(inputs):
            try:
                outputs.append(protocol.to_jsonable(namespace["transform"](json.loads(grid))))
            except Exception:
                outputs.append(None)
                status = "error" if i < num_tests else status
        data = json.dumps({"status": status, "outputs": outputs}, allow_nan=False).encode()
    except BaseException:
        data = b'{"status": "error"}'
    while data:
        data = data[os.write(fd, data):]
    os._exit(0)


statuses = []
for source, inputs, num_tests in share:
    inputs = [json.dumps(grid) for grid in inputs]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        child(source, inputs, num_tests, write_end)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    statuses.append(json.loads(b"".join(chunks))["status"])
print(json.dumps(statuses), flush=True)
"""


def bare_fork(programs: list[Program], workers: int) -> tuple[float, list[str]]:
    """(0): `workers` clean parents, each forking one child per program of its share (every
    `workers`-th program); timed from the go signal (all parents warm) to the last answer."""
    parents = []
    for k in range(workers):
        share = [(p.source, list(p.test_inputs) + list(p.train_inputs), len(p.test_inputs)) for p in programs[k::workers]]
        proc = subprocess.Popen([sys.executable, "-I", "-c", BARE_PARENT, str(RUNNER_DIR)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/")
        proc.stdin.write(json.dumps(share) + "\n")
        proc.stdin.flush()
        parents.append(proc)
    for proc in parents:
        assert proc.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for proc in parents:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    shares = [json.loads(proc.stdout.readline()) for proc in parents]
    wall = time.perf_counter() - start
    for proc in parents:
        proc.wait()
    statuses = [""] * len(programs)
    for k, share in enumerate(shares):
        statuses[k::workers] = share
    return wall, statuses


# Where a program's time goes in the sandbox: each step the runner takes beyond (0), timed alone
# inside a container of the sandbox image (PID 1, as the runner is there), per program.
SPLIT = r"""
import json, os, resource, signal, sys, time
sys.path.insert(0, sys.argv[1])
from runner import cleanup, main as runner_main, procs, program, protocol, seccomp, state
from runner.zygote import Zygote

runner_main.preload(runner_main.PRELOAD)
program.without_resource_tracker()
seccomp.prepare()
import gc
gc.freeze()
N = int(sys.argv[2])
CALLS = [[[1, 2], [3, 4]]] * 4
SOURCE = "def transform(grid):\n    return grid\n"
config = {"memory": 1 << 30, "fsize": 1 << 20, "nproc": 0, "timeout": 2.0, "uid": 100000,
          "scratch": ("/tmp", "/dev/shm"), "exclusive": True, "supervisor": os.getpid()}


def cpu_now():
    # CPU seconds of this process, the children it reaped and the zygote with the children it reaped:
    # what a program costs, whatever else the machine runs (wall time would count the others' load)
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    if zygote is not None:
        total += procs.cpu_seconds([zygote.pid])
    return total


def per_program(fn):
    start = cpu_now()
    for _ in range(N):
        fn()
    return (cpu_now() - start) / N * 1e6


def bare():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        namespace = {}
        exec(compile(SOURCE, "<program>", "exec"), namespace)
        data = json.dumps([namespace["transform"](json.loads(json.dumps(g))) for g in CALLS]).encode()
        os.write(w, data)
        os._exit(0)
    os.close(w)
    while os.read(r, 1 << 16):
        pass
    os.close(r)
    os.waitpid(pid, 0)


zygote = None
zygote = Zygote(config)
line = json.dumps({"id": 0, "source": SOURCE, "inputs": CALLS, "num_tests": 1}).encode()


def via_zygote():
    request = os.memfd_create("r", os.MFD_CLOEXEC)
    os.write(request, line)
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = zygote.spawn(b"p", [request, result_w, output_w])
    for fd in (request, result_w, output_w):
        os.close(fd)
    while os.read(result_r, 1 << 16):
        pass
    os.close(result_r)
    os.close(output_r)
    zygote.wait(pid)


STEPS = ("descriptors, session, signals", "rights dropped (uid, oom_score_adj, no_new_privs)", "request read",
         "rlimits set", "seccomp filter installed", "as a script (numpy RNG, recursion depth)",
         "module code run, CPU reported", "4 calls, each result and its CPU reported")


def program_steps():
    # program.program_main's steps in their order in a forked child, each timed where it really
    # happens (first touches of copied pages included): microseconds per step.
    request = os.memfd_create("r", os.MFD_CLOEXEC)
    os.write(request, line)
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        marks = [time.process_time()]
        os.setsid()
        program.take_fds([os.open(os.devnull, os.O_RDONLY), out_w, out_w, w, request], [0, 1, 2, 3, 4])
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        marks.append(time.process_time())
        program.become_program(config)
        marks.append(time.process_time())
        req = json.loads(os.pread(4, 1 << 20, 0))
        os.close(4)
        marks.append(time.process_time())
        limits()
        marks.append(time.process_time())
        seccomp.install()
        marks.append(time.process_time())
        os.register_at_fork(after_in_parent=lambda: program._forked.append(1))
        program.as_a_script()
        marks.append(time.process_time())
        namespace = {}
        exec(compile(req["source"], "<program>", "exec"), namespace)
        program.cpu_used()
        marks.append(time.process_time())
        for i, grid in enumerate(req["inputs"]):
            out = protocol.to_jsonable(namespace["transform"](grid))
            protocol.DUMPS({"i": i, "out": out, "cpu": program.cpu_used()})
        marks.append(time.process_time())
        os.write(3, json.dumps([(b - a) * 1e6 for a, b in zip(marks, marks[1:])]).encode())
        os._exit(0)
    for fd in (request, w, out_w):
        os.close(fd)
    data = b"".join(iter(lambda: os.read(r, 1 << 16), b""))
    os.close(r)
    os.close(out_r)
    os.waitpid(pid, 0)
    return json.loads(data)


def limits():
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, 1 << 30), (resource.RLIMIT_CPU, 12),
                         (resource.RLIMIT_FSIZE, 1 << 20), (resource.RLIMIT_NOFILE, 1024)):
        resource.setrlimit(limit, (value, value))


baseline = {"runner": state.process_state(0), "zygote": state.process_state(zygote.pid)}
others = lambda: [int(p) for p in os.listdir("/proc") if p.isdigit() and p != "1" and int(p) != zygote.pid]
steps = {
    "(0) bare fork: fork, exec, 4 calls, JSON to a pipe, wait": per_program(bare),
    "program through the zygote, all its own steps included": per_program(via_zygote),
    **{f"  in it: {name}": sum(column) / N for name, column in zip(STEPS, zip(*[program_steps() for _ in range(N)]))},
    "supervisor: sweep for leftover processes": per_program(lambda: procs.sweep({zygote.pid}, zygote.pid, True)),
    "supervisor: scratch and IPC left? (cleanup check)": per_program(lambda: cleanup.anything_left(("/tmp", "/dev/shm"), 0, True)),
    "supervisor: space and unix sockets held?": per_program(lambda: (state.free_blocks(("/tmp", "/dev/shm")), state.count_unix_sockets())),
    "supervisor: state check (runner and zygote)": per_program(lambda: [state.process_state(0), state.process_state(zygote.pid)] == list(baseline.values())),
    "supervisor: one CPU measurement (a call past limit / CPUS)": per_program(lambda: procs.cpu_seconds(others())),
    "supervisor: answer as JSON": per_program(lambda: json.dumps({"id": 1, "status": "ok", "outputs": CALLS, "call_errors": [None] * 4, "error": ""})),
}
print(json.dumps(steps))
"""


def split_profile(image: str, n: int) -> dict[str, float]:
    """Microseconds per program of each step, measured alone in a container of the sandbox image."""
    done = subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", "--read-only",
                           "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=64m", "--tmpfs", "/dev/shm:rw,nosuid,nodev,noexec,size=8m",
                           "--cap-drop", "ALL", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "KILL",
                           "--user", "0:0", "--label", f"{LABEL}=1", "--label", f"{LABEL}.pid={os.getpid()}", image,
                           "python3", "-I", "-c", SPLIT, str(Path(RUNNER_IN_IMAGE).parent), str(n)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the split profile failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


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


def status_flips(image: str, n: int, seed: int) -> tuple[int, list[str]]:
    """The same CPU-heavy honest programs (each call spins 0.2-1.6 s of CPU; the limit is the
    default 2 s) scored quiet and under two busy loops started here: how many statuses differ."""
    rng = random.Random(seed)
    spins = [round(rng.uniform(0.2, 1.6), 2) for _ in range(n)]
    programs = [Program(f"import time\ndef transform(grid):\n    t = time.process_time()\n"
                        f"    while time.process_time() - t < {spin}:\n        pass\n    return grid\n", [[[1]]])
                for spin in spins]

    def statuses() -> list[str]:
        with DockerExecutor(timeout=DEFAULT_TIMEOUT, image=image) as executor:
            return [e.status for e in executor.run(programs)]

    quiet = statuses()
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = statuses()
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    return sum(a != b for a, b in zip(quiet, loaded)), quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=2000, help="programs for the warm executor")
    parser.add_argument("--per-container", type=int, default=60, help="programs for (b) and (c) each; 0: skip them")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="programs at once, every mode")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per transform call")
    parser.add_argument("--timeout-share", type=float, default=0.01, help="endless loops in the a-mixed workload")
    parser.add_argument("--rounds", type=int, default=4, help="slices in which (0) and a-stream alternate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-programs", type=int, default=300, help="repetitions of each step of the split")
    parser.add_argument("--load-programs", type=int, default=16,
                        help="CPU-heavy honest programs scored quiet and under two busy loops (status flips)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    client = docker_client()
    image = ensure_image(quiet=True)
    clean = [p for _, _, p in workload(args.programs, args.seed, timeout_share=0.0)]
    mixed = [p for _, _, p in workload(args.programs, args.seed + 1, timeout_share=args.timeout_share)]
    few = clean[: args.per_container]
    rows = []

    split = split_profile(image, args.split_programs)
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

    flips, load_statuses = status_flips(image, args.load_programs, args.seed)

    run_args = ["run", "--rm", "-i", *HARDENING, "--user", "10002:10002", image,
                "python3", "-I", RUNNER_IN_IMAGE, "--workers", "1", "--timeout", str(args.timeout)]
    run_statuses = exec_statuses = stream_statuses[: len(few)]
    if few:
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
    ratios = {"a-stream / 0 (bare fork, the honest limit; target >= 0.8)": round(by_mode["a-stream"] / by_mode["0"], 2)}
    if few:
        ratios.update({
            "a-stream / b (docker run)": round(by_mode["a-stream"] / by_mode["b"], 1),
            "a-stream / c (docker exec)": round(by_mode["a-stream"] / by_mode["c"], 1),
            "a-closed / b (docker run)": round(by_mode["a-closed"] / by_mode["b"], 1),
            "a-closed / c (docker exec)": round(by_mode["a-closed"] / by_mode["c"], 1),
        })
    machine = {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
               "load_avg_1m": round(os.getloadavg()[0], 2), "kernel": platform.release(), "docker": client.version().get("Version"), "image": image,
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
    bare_us = split["(0) bare fork: fork, exec, 4 calls, JSON to a pipe, wait"]
    print(f"\nwhere a program's time goes (CPU us per program, in a container of the image, {args.split_programs} "
          f"times; an echo program with 4 calls):")
    for name, us in split.items():
        print(f"  {name:62s} {us:9.0f}  {us / bare_us:5.2f}x of (0)")
    print(f"\nstatus flips, {len(load_statuses)} CPU-heavy honest programs (0.2-1.6 s of CPU, 2 s limit), "
          f"quiet vs two busy loops: {flips}  (statuses {dict(sorted(collections.Counter(load_statuses).items()))})")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "startup_s": round(startup, 2), "rows": rows,
                                         "split_us": split, "status_flips_quiet_vs_loaded": flips,
                                         "ratios": ratios, "statuses_agree": agree, "statuses": counts,
                                         "mixed_statuses": mixed_counts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
