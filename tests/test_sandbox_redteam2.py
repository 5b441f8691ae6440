"""Red-team round 2: CPU-time accounting, signals, and cross-program effects (docker backend).

Each test asserts the behaviour the sandbox should have; see the module's report for which fail.
"""

from __future__ import annotations

import time

import pytest

from rps_evals.execution import Program, get_executor

G = [[1, 2], [3, 4]]
T = 1.0  # CPU seconds per call


@pytest.fixture(scope="module")
def ex():
    try:
        e = get_executor("docker", timeout=T, workers=1)
    except Exception as exc:  # no Docker engine
        pytest.skip(f"docker unavailable: {exc}")
    with e:
        yield e


def run(ex, src, n=1):
    return ex.run([Program(src, [G] * n)])[0]


BURN = "def burn(s):\n    import time\n    t = time.process_time()\n    while time.process_time() - t < s: pass\n"


def test_sigign_children_burn_is_timeout(ex):
    """Children auto-reaped (SIGCHLD ignored) burning 3 CPU s in a 1 s call: a timeout."""
    src = BURN + """
import os, signal
def transform(g):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for _ in range(3):
        if os.fork() == 0:
            burn(1.0); os._exit(0)
    import time; time.sleep(2.5)
    return g
"""
    assert run(ex, src).status == "timeout"


def test_sigign_children_module_level_is_timeout(ex):
    src = BURN + """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(3):
    if os.fork() == 0:
        burn(1.0); os._exit(0)
time.sleep(2.5)
def transform(g):
    return g
"""
    assert run(ex, src).status == "timeout"


def test_thread_spanning_calls_counts(ex):
    """A thread started in call 0 keeps burning through later calls: the total of calls 0-2
    (3 x 0.45 s of its CPU + more) — each call is charged what ran during it."""
    src = BURN + """
import threading, time
started = []
def transform(g):
    if not started:
        started.append(threading.Thread(target=burn, args=(5.0,), daemon=True)); started[0].start()
    time.sleep(0.8)  # ~0.8 CPU s of the thread per call, within 1 s each... then
    burn(0.5)        # 0.5 s more of our own: > 1 s per call
    return g
"""
    assert run(ex, src, n=3).status == "timeout"


def test_orphan_after_last_call_does_not_hurt_next(ex):
    """A daemon left burning after the last call is killed; the next program's budget is whole."""
    a = BURN + """
import os
def transform(g):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            burn(30)
        os._exit(0)
    os.wait()
    return g
"""
    b = BURN + """
def transform(g):
    burn(0.7)
    return g
"""
    ra, rb = ex.run([Program(a, [G]), Program(b, [G, G])])
    assert ra.status == "ok"
    assert rb.status == "ok", rb.error


def test_zombie_children_cpu_counts(ex):
    src = BURN + """
import os, time
def transform(g):
    for _ in range(3):
        if os.fork() == 0:
            burn(0.6); os._exit(0)
    time.sleep(2.0)   # zombies, never reaped: 1.8 CPU s in a 1 s call
    return g
"""
    assert run(ex, src).status == "timeout"


def test_honest_sigchld_handler(ex):
    src = """
import os, signal
got = []
def transform(g):
    signal.signal(signal.SIGCHLD, lambda *a: got.append(1))
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return g
"""
    r = run(ex, src)
    assert r.status == "ok", r.error


def test_honest_alarm_handler(ex):
    src = """
import signal
class Late(Exception): pass
def h(*a): raise Late
def transform(g):
    signal.signal(signal.SIGALRM, h)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    n = 0
    try:
        while True:
            n += 1
    except Late:
        return g
"""
    r = run(ex, src)
    assert r.status == "ok", r.error


def test_honest_asyncio(ex):
    src = """
import asyncio
async def f(g):
    await asyncio.sleep(0.01)
    return g
def transform(g):
    return asyncio.run(f(g))
"""
    r = run(ex, src)
    assert r.status == "ok", r.error


def test_honest_multiprocessing_pool(ex):
    src = """
import multiprocessing as mp
def sq(x): return x * x
def transform(g):
    with mp.Pool(2) as p:
        return [p.map(sq, row) for row in g]
"""
    r = run(ex, src)
    assert r.status == "ok", r.error
    assert r.test_outputs[0] == [[1, 4], [9, 16]]


def test_honest_process_pool_executor(ex):
    src = """
from concurrent.futures import ProcessPoolExecutor
def sq(x): return x * x
def transform(g):
    with ProcessPoolExecutor(2) as p:
        return [list(p.map(sq, row)) for row in g]
"""
    r = run(ex, src)
    assert r.status == "ok", r.error


def test_honest_sigint_handler(ex):
    src = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, lambda *a: None)
def transform(g):
    return g
"""
    r = run(ex, src)
    assert r.status == "ok", r.error


def test_honest_ninety_percent_every_call(ex):
    """Each call uses 0.8 of its 1 s: ok on every call (no drift in the per-call baseline)."""
    src = BURN + """
def transform(g):
    burn(0.8)
    return g
"""
    r = run(ex, src, n=4)
    assert r.status == "ok", r.error


def test_honest_module_level_and_call_budgets_separate(ex):
    src = BURN + """
burn(0.8)
def transform(g):
    burn(0.8)
    return g
"""
    r = run(ex, src, n=2)
    assert r.status == "ok", r.error


def test_printing_shifts_no_cpu_to_runner(ex):
    """A program that makes the runner work (many tiny prints) while burning CPU still times out."""
    src = """
import os, time, threading
def spam():
    while True:
        os.write(1, b"x")
def transform(g):
    threading.Thread(target=spam, daemon=True).start()
    t = time.process_time()
    while time.process_time() - t < 3: pass
    return g
"""
    r = run(ex, src)
    assert r.status in ("timeout", "error")
    assert r.status == "timeout" or "printed" in r.error


def test_big_result_lines_parse_cost(ex):
    """The runner parses each result line (subtracted as its own CPU): 8 calls returning near
    1 MiB each, with the call's own CPU near its limit, must time out where it exceeds."""
    src = BURN + """
def transform(g):
    burn(1.3)
    return [[123456789] * 1000 for _ in range(90)]
"""
    r = run(ex, src, n=2)
    assert r.status == "timeout"


def test_sys_argv(ex):
    r = run(ex, "import sys\ndef transform(g):\n    return [[len(sys.argv), int(sys.argv[0] == '<program>')]]\n")
    assert r.status == "ok" and r.test_outputs[0] == [[1, 1]]


def test_sigign_short_lived_children_waves(ex):
    """Waves of auto-reaped children, each gone well before the supervisor looks: only a cgroup
    count sees them (no /proc sum of live processes does)."""
    src = BURN + """
import os, signal, time
def transform(g):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for _ in range(12):
        for _ in range(2):
            if os.fork() == 0:
                burn(0.1); os._exit(0)
        time.sleep(0.12)
    time.sleep(1.0)
    return g
"""
    assert run(ex, src).status == "timeout"


def test_no_exit_after_last_call_then_next_program_ok(ex):
    """The program replaces the runner's EXIT so its process burns on after its last call; its
    answer stays its own, and the next program in the same container is unaffected."""
    a = BURN + """
import sys
def transform(g):
    mod = sys.modules.get("sandbox.runner.program")
    if mod is not None:
        mod.EXIT = lambda code: burn(60)
    return g
"""
    b = BURN + """
def transform(g):
    burn(0.7)
    return g
"""
    t = time.monotonic()
    ra, rb = ex.run([Program(a, [G]), Program(b, [G, G])])
    assert ra.status == "ok" and ra.test_outputs == [G]
    assert rb.status == "ok", rb.error
    assert time.monotonic() - t < 20


def test_underreported_cpu_gains_nothing(ex):
    """The program makes the runner report 0 CPU for every call: its calls still time out."""
    src = BURN + """
import sys
mod = sys.modules.get("sandbox.runner.program")
if mod is not None:
    mod.cpu_used = lambda: 0.0
def transform(g):
    burn(0.7)
    return g
"""
    r = run(ex, src, n=3)
    # 0.7 per call is honest, but reporting 0 makes every later budget start at 0: a self-inflicted
    # timeout is acceptable; what must not happen is an ok for a call that used more than its limit
    src2 = src.replace("burn(0.7)", "burn(1.4)")
    assert run(ex, src2, n=3).status == "timeout"


def test_forged_result_lines_do_not_pool_budgets(ex):
    """Module-level code writes the runner's lines itself (loaded, then every call, each claiming
    a huge CPU total), then computes 3 s: it must not get the 3 calls' budgets pooled."""
    src = BURN + """
import os, json
os.write(3, (json.dumps({"loaded": 0.0}) + "\\n").encode())
for i in range(3):
    burn(0.9)
    os.write(3, (json.dumps({"i": i, "out": [[7]], "cpu": 1e6}) + "\\n").encode())
def transform(g):
    return g
"""
    r = run(ex, src, n=3)
    assert r.status != "ok" or r.test_outputs != [[[7]]] * 3


def test_hash_seed_is_what_the_environment_says():
    """The container sets PYTHONHASHSEED=0 (programs see it in os.environ), but the runner starts
    with `python3 -I`, which ignores it: every container draws a random str-hash seed that all its
    programs share. A program that returns the order of a set of strings gives different answers
    in different containers (and differs from `PYTHONHASHSEED=0 python3 prog.py`)."""
    src = ("import os, sys\ndef transform(g):\n"
           "    return [[os.environ.get('PYTHONHASHSEED'), sys.flags.hash_randomization, hash('abc')]]\n")
    seen = []
    for _ in range(2):
        try:
            e = get_executor("docker", timeout=T, workers=1)
        except Exception as exc:
            pytest.skip(f"docker unavailable: {exc}")
        with e:
            r = e.run([Program(src, [G])])[0]
        assert r.status == "ok", r.error
        seen.append(r.test_outputs[0][0])
    env_seed, randomized, _ = seen[0]
    if env_seed == "0":
        assert randomized == 0, "PYTHONHASHSEED=0 is set but hash randomization is on"
    assert seen[0][2] == seen[1][2], "str hashes differ between containers"


def test_many_autoreaped_children_starving_runner(ex):
    """The last call floods both cores with 60 auto-reaped children (1.8 CPU s in 0.9 s of wall
    time, gone before the call returns): the runner, competing with them, must still notice."""
    src = """
import os, signal, time
def transform(g):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    end = time.monotonic() + 0.9
    for _ in range(60):
        if os.fork() == 0:
            while time.monotonic() < end: pass
            os._exit(0)
    time.sleep(1.2)
    return g
"""
    assert run(ex, src, n=2).status == "timeout"
