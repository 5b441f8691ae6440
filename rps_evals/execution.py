"""Running model-written programs: the Executor interface and its backends.

All untrusted code runs in `sandbox/runner.py`, a fork server that gives every program a fresh
process with rlimits and per-call wall-clock limits and speaks JSON lines (never pickle). The
backends differ only in where that runner lives:

- `docker` (the default): inside hardened, network-less containers (see sandbox/ and docs/sandbox.md).
- `local`: a runner process on this machine. UNSAFE for untrusted code: rlimits are not a sandbox
  (a program can read your files and open sockets). Use it only for your own programs or tests.

Executors are thread-safe and keep their runner warm between `run` calls; use them as context
managers so the runner (and its container) is always cleaned up.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from typing import Any, Callable, Iterable, Sequence

from rps_evals.parse import Grid

STATUSES = ("ok", "error", "timeout", "no_program")
DEFAULT_TIMEOUT = 2.0  # seconds per transform() call
RUNNER_PATH = str(files("rps_evals.sandbox") / "runner.py")
RUNNER_IN_IMAGE = "/opt/rps/runner.py"  # where sandbox/Dockerfile puts the runner


def sandbox_hash() -> str:
    """12 hex digits of sha256(runner.py + Dockerfile): the image tag, so an image built from other
    sources is never used by mistake (sandbox/build_offline.sh computes the same)."""
    sandbox = files("rps_evals.sandbox")
    data = (sandbox / "runner.py").read_bytes() + (sandbox / "Dockerfile").read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


SANDBOX_IMAGE = f"rps-evals-sandbox:{sandbox_hash()}"
LABEL = "rps-evals.sandbox"  # every container we start carries it (leftovers: docker ps -f label=...)


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
    """Runs Programs and returns Executions; thread-safe, warm between calls, a context manager.

    A backend implements `_submit` (hand one program with source to its runner, resolve the future
    with its Execution) and `close`; programs with nothing to run never reach it.
    """

    name = "abstract"

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
        future: Future = Future()
        if not program.source:
            future.set_result(Execution.nothing_to_run(program))
        else:
            self._submit(program, future)
        return future

    def _submit(self, program: Program, future: Future) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _request_line(self, request_id: int, program: Program) -> bytes:
        return (runner_request(request_id, program, self.timeout) + "\n").encode()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def runner_request(request_id: int, program: Program, timeout: float) -> str:
    """One request of the runner protocol (sandbox/runner.py), as a JSON line without its newline:
    the test inputs first, then the training inputs."""
    return json.dumps({"id": request_id, "source": program.source,
                       "inputs": list(program.test_inputs) + list(program.train_inputs),
                       "num_tests": len(program.test_inputs), "timeout": timeout})


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
    """UNSAFE: runs programs in a runner subprocess on this machine, limited only by rlimits.

    One runner process, started on first use; its answers are read by a thread and matched to
    futures by id. If it dies, only the programs in flight fail and the next submit starts another.
    """

    name = "local"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, memory_mb: int = 1024):
        super().__init__(timeout, workers)
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, tuple[Future, Program]] = {}

    def _submit(self, program: Program, future: Future) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            request_id = next(self._ids)
            self._pending[request_id] = (future, program)
            try:
                if self._proc is None:
                    self._start_runner()
                self._proc.stdin.write(self._request_line(request_id, program))
                self._proc.stdin.flush()
            except (OSError, ValueError) as exc:
                self._pending.pop(request_id, None)
                self._runner_died(f"could not send to the sandbox runner: {exc}")
                future.set_result(_runner_failure(program, f"sandbox runner unavailable: {exc}"))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
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
            [sys.executable, "-I", RUNNER_PATH, "--workers", str(self.workers),
             "--timeout", str(self.timeout), "--memory-mb", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/",
        )
        self._proc = proc
        threading.Thread(target=self._read_answers, args=(proc,), daemon=True).start()

    def _read_answers(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                entry = self._pending.pop(answer.get("id"), None)
            if entry is not None:
                entry[0].set_result(_execution_from_answer(entry[1], answer))
        with self._lock:
            if self._proc is proc:  # the runner ended while we still used it
                self._proc = None
                self._runner_died("the sandbox runner exited unexpectedly")

    def _runner_died(self, why: str) -> None:
        """Fail only the programs that were in flight (call with the lock held)."""
        pending, self._pending = self._pending, {}
        for future, program in pending.values():
            if not future.done():
                future.set_result(_runner_failure(program, why))


# -- the Docker sandbox ----------------------------------------------------------------------------

_ENGINE_HELP = (
    "Start a Docker engine (Docker Desktop; `sudo systemctl start docker`; on a Debian machine "
    "without a recent engine, `sudo bash scripts/install_docker_engine.sh` from the rps-evals "
    "source tree), check DOCKER_HOST / `docker context`, or choose `--sandbox local` explicitly "
    "(UNSAFE: model-written programs then run on this machine, limited only by rlimits)."
)


def _docker_module():
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable(
            "the docker sandbox needs the Docker SDK for Python: pip install 'rps-evals[docker]' "
            "(or choose `--sandbox local` explicitly: UNSAFE, programs run on this machine)"
        ) from None
    return docker


def docker_client(timeout: int = 60):
    """A client for the engine of the environment (DOCKER_HOST, ...); SandboxUnavailable if none answers."""
    docker = _docker_module()
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, ...
        raise SandboxUnavailable(f"no Docker engine answers at {where} ({exc}). {_ENGINE_HELP}") from None
    return client


def _image_exists(client, image: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
        return True
    except ImageNotFound:
        return False


def ensure_image(image: str | None = None, *, offline: bool | None = None, base_image: str | None = None,
                 force: bool = False, quiet: bool = False) -> str:
    """Build the sandbox image unless it exists; return its name. For `rps-evals sandbox build`.

    online: `docker build` of sandbox/Dockerfile (BASE_IMAGE default: the official slim Python image);
    offline: sandbox/build_offline.sh (mmdebstrap base from the host's apt sources). With
    offline=None the online build is tried first and the offline one where that fails.
    """
    image = image or SANDBOX_IMAGE
    client = docker_client()
    if not force and _image_exists(client, image):
        return image
    errors = []
    if offline is not True:
        try:
            with as_file(files("rps_evals.sandbox")) as context:
                buildargs = {"SANDBOX_HASH": sandbox_hash()}
                if base_image:
                    buildargs["BASE_IMAGE"] = base_image
                _, logs = client.images.build(path=str(context), tag=image, buildargs=buildargs, rm=True,
                                              forcerm=True, nocache=force)
                if not quiet:
                    for chunk in logs:
                        if "stream" in chunk:
                            print(chunk["stream"], end="", file=sys.stderr)
            client.images.get(image).tag(image.rsplit(":", 1)[0], "latest")
            return image
        except Exception as exc:
            errors.append(f"online build failed: {exc}")
            if offline is False:
                raise SandboxUnavailable(errors[0]) from None
            if not quiet:
                print(f"{errors[0]}; building offline with sandbox/build_offline.sh", file=sys.stderr)
    if image != SANDBOX_IMAGE:
        raise SandboxUnavailable(f"the offline build makes {SANDBOX_IMAGE} only, not {image}; " + "; ".join(errors))
    if shutil.which("mmdebstrap") is None and os.geteuid() != 0:
        errors.append("offline build needs mmdebstrap (apt-get install mmdebstrap)")
        raise SandboxUnavailable("; ".join(errors))
    with as_file(files("rps_evals.sandbox") / "build_offline.sh") as script:
        done = subprocess.run(["bash", str(script)] + (["--force"] if force else []),
                              stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 or not _image_exists(client, image):
        errors.append(f"offline build failed: {done.stderr[-2000:]}")
        raise SandboxUnavailable("; ".join(errors))
    return image


def remove_leftover_containers(everything: bool = False) -> list[str]:
    """Remove sandbox containers whose owning process (on this host) is gone; all of them with
    everything=True. Returns the removed names. Our executors remove their own containers; this
    is for what a SIGKILLed or crashed host process left behind."""
    client = docker_client()
    removed = []
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels or {}
        if not everything:
            if labels.get(f"{LABEL}.host") != host or _pid_alive(labels.get(f"{LABEL}.pid")):
                continue
        _force_remove(client, container.id)
        removed.append(container.name)
    return removed


def _pid_alive(pid: str | None) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _force_remove(client, container_id: str) -> None:
    """Kill and remove a container; wait until it is really gone (auto-remove may be racing us)."""
    from docker.errors import APIError, NotFound

    try:
        client.api.remove_container(container_id, force=True)
    except NotFound:
        return
    except APIError:  # 409: removal already in progress
        pass
    for _ in range(100):
        try:
            client.api.inspect_container(container_id)
        except NotFound:
            return
        except Exception:
            return
        time.sleep(0.05)


@dataclass
class _Item:
    """One program on its way through the Docker executor."""

    request_id: int
    future: Future
    program: Program
    line: bytes


class _Slot:
    """One container running one runner that runs one program at a time."""

    def __init__(self, index: int):
        self.index = index
        self.generation = 0
        self.container_id: str | None = None
        self.sock = None
        self.outstanding: collections.OrderedDict[int, _Item] = collections.OrderedDict()
        self.ready = False
        self.broken = ""
        self.stderr_tail = b""
        self.restarts = 0


class DockerExecutor(Executor):
    """Runs programs in long-lived hardened containers, one runner (one program at a time) each.

    `workers` containers are started on first use; requests are streamed to the runners over the
    attach socket, at most `depth` per container, so a runner always has its next program ready.
    Each container: no network, read-only root with small tmpfs, memory and pids limits, no
    capabilities, no-new-privileges, a random non-root uid of its own (so RLIMIT_NPROC counts only
    its processes) and the runner as PID 1 (no program can signal it) in `--exclusive` mode (after
    each program every leftover process, file and IPC object is removed). A container that dies is
    replaced; only the program it was running is marked `error`, the ones queued behind it re-run.
    """

    name = "docker"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, memory_mb: int = 1024,
                 image: str | None = None, depth: int = 2, pids_limit: int = 128, tmpfs_mb: int = 64,
                 start_timeout: float = 120.0, runtime: str | None = None):
        super().__init__(timeout, workers)
        # e.g. "runsc" (gVisor) for a kernel boundary too; default: the engine's own (runc)
        self.runtime = runtime or os.environ.get("RPS_EVALS_DOCKER_RUNTIME") or None
        self.memory_mb = memory_mb
        self.image = image or os.environ.get("RPS_EVALS_SANDBOX_IMAGE") or SANDBOX_IMAGE
        self.depth = max(1, depth)
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(4)
        self._client = docker_client()
        if not _image_exists(self._client, self.image):
            raise SandboxUnavailable(
                f"the sandbox image {self.image} is not built yet: run `rps-evals sandbox build` "
                "(or `bash sandbox/build_offline.sh` where no registry is reachable; from Python: "
                "rps_evals.execution.ensure_image())"
            )
        self._slots: list[_Slot] = []
        self._queue: collections.deque[_Item] = collections.deque()
        self._start_lock = threading.Lock()
        self._started = False
        _LIVE_EXECUTORS.add(self)
        _install_signal_handlers()
        try:
            remove_leftover_containers()
        except Exception:
            pass

    # -- the interface ------------------------------------------------------------------------
    def start(self) -> DockerExecutor:
        """Start every container and wait until its runner is ready (submit does this lazily)."""
        with self._start_lock:
            if self._started:
                return self
            if self._closed:
                raise RuntimeError("executor is closed")
            slots = [_Slot(i) for i in range(self.workers)]
            with self._lock:
                self._slots = slots  # known to close() even if we are interrupted while starting
            errors: list[str] = []
            threads = [threading.Thread(target=self._launch_or_note, args=(slot, errors), daemon=True)
                       for slot in slots]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with self._lock:
                self._started = True
            if all(slot.broken for slot in slots):
                self.close()
                raise SandboxUnavailable(f"no sandbox container started: {errors[0]}")
        return self

    def _submit(self, program: Program, future: Future) -> None:
        if not self._started:
            self.start()
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            if all(slot.broken for slot in self._slots):
                raise SandboxUnavailable(self._slots[0].broken)
            request_id = next(self._ids)
            self._queue.append(_Item(request_id, future, program, self._request_line(request_id, program)))
            self._pump()

    def close(self) -> None:
        with self._lock:
            if self._closed and not self._slots:
                return
            self._closed = True
            slots, self._slots = self._slots, []
            items = list(self._queue)
            self._queue.clear()
            for slot in slots:
                slot.generation += 1  # the readers' deaths below are expected, not restarts
                items += slot.outstanding.values()
                slot.outstanding.clear()
        for item in items:
            if not item.future.done():
                item.future.set_result(_runner_failure(item.program, "the executor was closed first"))
        threads = [threading.Thread(target=self._discard, args=(slot,), daemon=True) for slot in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _LIVE_EXECUTORS.discard(self)

    def container_ids(self) -> list[str]:
        """The containers running now (for tests and diagnostics)."""
        with self._lock:
            return [slot.container_id for slot in self._slots if slot.container_id and slot.ready]

    # -- containers ---------------------------------------------------------------------------
    def _container_config(self, slot: _Slot) -> dict:
        uid = 100_000 + secrets.randbelow(1_000_000_000)  # its own uid: RLIMIT_NPROC counts per uid
        memory = self.memory_mb + 256
        return dict(
            image=self.image,
            command=["python3", "-I", RUNNER_IN_IMAGE, "--exclusive", "--hello", "--workers", "1",
                     "--timeout", str(self.timeout), "--memory-mb", str(self.memory_mb),
                     "--nproc", str(max(8, self.pids_limit // 2)), "--scratch", "/tmp", "--scratch", "/dev/shm"],
            name=f"rps-sandbox-{self.token}-{slot.index}-{slot.generation}",
            user=f"{uid}:{uid}",
            stdin_open=True,
            tty=False,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={self.tmpfs_mb}m,mode=1777"},
            ipc_mode="private",
            shm_size="8m",
            mem_limit=f"{memory}m",
            memswap_limit=f"{memory}m",
            pids_limit=self.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            init=False,  # the runner itself is PID 1: no program in the container can signal it
            working_dir="/tmp",
            environment={"HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                         "PYTHONDONTWRITEBYTECODE": "1"},
            labels={LABEL: "1", f"{LABEL}.pid": str(os.getpid()), f"{LABEL}.host": socket.gethostname(),
                    f"{LABEL}.executor": self.token},
            log_config={"type": "none"},  # answers go over the attach socket, not into log files
            auto_remove=True,  # if we are SIGKILLed: stdin closes, the runner exits, the container goes
            hostname="sandbox",
            **({"runtime": self.runtime} if self.runtime else {}),
        )

    def _launch_or_note(self, slot: _Slot, errors: list[str]) -> None:
        try:
            self._launch(slot)
        except Exception as exc:
            slot.broken = str(exc)
            errors.append(str(exc))

    def _launch(self, slot: _Slot) -> None:
        """Create, attach and start the slot's container; return once its runner said ready."""
        client = self._client
        config = self._container_config(slot)
        ready = threading.Event()
        container = client.containers.create(**config)
        slot.container_id = container.id
        try:
            if self._closed:
                raise SandboxUnavailable("the executor was closed while a container started")
            # Requests are JSON with ASCII escapes, so they never carry the raw control bytes of
            # Docker's detach-key sequence.
            sock = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                                  "stream": 1})
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(None)
            slot.sock = raw
            generation = slot.generation
            threading.Thread(target=self._read_slot, args=(slot, generation, raw, ready), daemon=True,
                             name=f"rps-sandbox-{slot.index}").start()
            container.start()
            if not ready.wait(self.start_timeout) or slot.generation != generation or not slot.ready:
                tail = slot.stderr_tail.decode("utf-8", "replace")[-1000:]
                raise SandboxUnavailable(f"the sandbox runner in {self.image} did not start: {tail or 'no output'}")
            if self._closed:
                raise SandboxUnavailable("the executor was closed while a container started")
        except BaseException:
            with self._lock:
                slot.generation += 1  # its reader's end is this failure, not a death to restart from
                slot.ready = False
            _close_socket(slot.sock)
            _force_remove(client, container.id)
            raise

    def _discard(self, slot: _Slot) -> None:
        _close_socket(slot.sock)
        if slot.container_id:
            try:
                _force_remove(self._client, slot.container_id)
            except Exception:
                pass

    def _read_slot(self, slot: _Slot, generation: int, raw, ready: threading.Event) -> None:
        """Demultiplex the attach stream: runner answers on stdout, diagnostics on stderr."""
        stream = raw.makefile("rb")
        pending = b""
        try:
            while True:
                header = stream.read(8)
                if len(header) < 8:
                    break
                size = int.from_bytes(header[4:8], "big")
                payload = stream.read(size)
                if len(payload) < size:
                    break
                if header[0] == 2:
                    slot.stderr_tail = (slot.stderr_tail + payload)[-4000:]
                    continue
                pending += payload
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._on_answer(slot, generation, line, ready)
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass
            ready.set()
            self._on_death(slot, generation)

    def _on_answer(self, slot: _Slot, generation: int, line: bytes, ready: threading.Event) -> None:
        try:
            answer = json.loads(line)
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        if answer.get("ready"):
            slot.ready = True
            ready.set()
            with self._lock:
                self._pump()
            return
        with self._lock:
            item = slot.outstanding.pop(answer.get("id"), None) if slot.generation == generation else None
            self._pump()
        if item is not None and not item.future.done():
            item.future.set_result(_execution_from_answer(item.program, answer))

    def _on_death(self, slot: _Slot, generation: int) -> None:
        """The runner's stream ended: blame the program it was running, re-queue the rest, restart."""
        with self._lock:
            if slot.generation != generation or self._closed:
                return
            slot.ready = False
            slot.generation += 1
            items = list(slot.outstanding.values())
            slot.outstanding.clear()
            self._queue.extendleft(reversed(items[1:]))  # had not started: they run elsewhere or later
            old_id, slot.container_id = slot.container_id, None
            old_sock, slot.sock = slot.sock, None
            slot.restarts += 1
        if items:
            tail = slot.stderr_tail.decode("utf-8", "replace").strip()[-500:]
            why = "the sandbox container stopped while running this program"
            items[0].future.set_result(_runner_failure(items[0].program, why + (f" ({tail})" if tail else "")))
        _close_socket(old_sock)
        if old_id:
            try:
                _force_remove(self._client, old_id)
            except Exception:
                pass
        slot.stderr_tail = b""
        try:
            self._launch(slot)
        except Exception as exc:
            with self._lock:
                slot.broken = f"could not restart a sandbox container: {exc}"
                if all(s.broken for s in self._slots):
                    failed = list(self._queue)
                    self._queue.clear()
                else:
                    failed = []
                    self._pump()
            for item in failed:  # the sandbox is gone: that is no program's fault, so no status
                item.future.set_exception(SandboxUnavailable(slot.broken))
            return
        with self._lock:
            if self._closed:
                closing = True
            else:
                closing = False
                self._pump()
        if closing:
            self._discard(slot)

    def _pump(self) -> None:
        """Hand queued programs to ready runners, breadth first (call with the lock held)."""
        while self._queue:
            open_slots = [s for s in self._slots if s.ready and not s.broken and len(s.outstanding) < self.depth]
            if not open_slots:
                return
            open_slots.sort(key=lambda s: len(s.outstanding))
            for slot in open_slots:
                if not self._queue:
                    return
                item = self._queue.popleft()
                slot.outstanding[item.request_id] = item
                try:
                    slot.sock.sendall(item.line)
                except (OSError, AttributeError):
                    slot.ready = False  # its reader sees the end and restarts it; the item goes with it


def _close_socket(sock) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


_LIVE_EXECUTORS: weakref.WeakSet[DockerExecutor] = weakref.WeakSet()
_HANDLERS_INSTALLED = False


def _close_live_executors() -> None:
    for executor in list(_LIVE_EXECUTORS):
        try:
            executor.close()
        except Exception:
            pass


atexit.register(_close_live_executors)


def _install_signal_handlers() -> None:
    """SIGTERM would end Python without atexit: turn it into SystemExit so containers get removed.
    SIGINT already raises KeyboardInterrupt. Only where nobody else installed a handler."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _HANDLERS_INSTALLED = True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_sigterm(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)


BACKENDS: dict[str, type[Executor]] = {"local": LocalExecutor, "docker": DockerExecutor}


def get_executor(name: str | None = None, **options) -> Executor:
    """The executor called `name`; None means the safe default, the Docker sandbox."""
    name = name or "docker"
    if name not in BACKENDS:
        raise SandboxUnavailable(
            f"unknown sandbox {name!r}; choose one of {', '.join(sorted(BACKENDS))}"
        )
    return BACKENDS[name](**options)


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
def _close_shared_executors() -> None:
    with _SHARED_LOCK:
        executors = list(_SHARED.values())
        _SHARED.clear()
    for executor in executors:
        executor.close()


def run_programs(programs: Iterable[Program], sandbox: str | None = None, **options) -> list[Execution]:
    """One-shot convenience: start an executor, run `programs`, clean up."""
    with get_executor(sandbox, **options) as executor:
        return executor.run(list(programs))
