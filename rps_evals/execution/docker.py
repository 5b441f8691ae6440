"""The default backend: warm, hardened, network-less containers, each running one runner."""

from __future__ import annotations

import atexit
import collections
import os
import queue
import secrets
import signal
import socket
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass

from rps_evals.execution import DEFAULT_TIMEOUT, Executor, Program, SandboxUnavailable
from rps_evals.execution.image import (
    LABEL,
    _force_remove,
    check_image,
    docker_client,
    remove_leftover_containers,
    sandbox_image,
)
from rps_evals.execution.protocol import (
    RUNNER_IN_IMAGE,
    execution_from_answer,
    read_answer,
    runner_command,
    runner_failure,
)


@dataclass(frozen=True)
class ContainerLimits:
    """The limits of every sandbox container: DockerExecutor's, and sandbox/compose.yaml's as
    rendered by rps_evals.inspect_eval.sandbox.compose_file() for Inspect's own docker sandbox."""

    memory_mb: int = 1024  # per program (the runner's RLIMIT_AS)
    runner_mb: int = 256  # the runner itself; the container may use memory_mb + runner_mb in all
    pids: int = 512  # processes + threads in the container; a program may add half (Pool(64) + 64 threads fit)
    tmpfs_mb: int = 64  # /tmp
    shm_mb: int = 8  # /dev/shm
    tmpfs_inodes: int = 4096  # files + directories in /tmp: bounds what cleanup after a program costs
    shm_inodes: int = 1024  # the same for /dev/shm

    @property
    def container_mb(self) -> int:
        return self.memory_mb + self.runner_mb


LIMITS = ContainerLimits()
# What the runner (root in its container, PID 1) keeps: start each program under the programs' uid,
# and kill what programs leave. Programs themselves get no capability at all.
RUNNER_CAPABILITIES = ("SETUID", "SETGID", "KILL")


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
        self.retiring = False  # the runner said it retires: what it had not answered runs again
        self.stderr_tail = b""
        self.sendq: queue.SimpleQueue | None = None  # request lines for this container's writer thread


class DockerExecutor(Executor):
    """Runs programs in long-lived hardened containers, one runner (one program at a time) each.

    `workers` containers are started on first use; requests are streamed to the runners over the
    attach socket, at most `depth` per container, so a runner always has its next program ready.
    Each container: no network, read-only root with small tmpfs (bounded in bytes and inodes),
    memory and pids limits, no-new-privileges, and the runner as PID 1 in `--exclusive` mode, root
    with only SETUID, SETGID and KILL: it runs every program under a random uid of the container's
    own (no capabilities, seccomp, its own rlimits), so no program can signal, trace or re-limit the
    runner, and after each program every leftover process, file and IPC object is removed (see
    docs/sandbox.md). A container that dies is replaced; only the program it was running is marked
    `error`, the ones queued behind it re-run. Requests are sent by one writer thread per container,
    so reading answers never waits on sending requests.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None,
                 memory_mb: int = LIMITS.memory_mb, image: str | None = None, depth: int = 2,
                 pids_limit: int = LIMITS.pids, tmpfs_mb: int = LIMITS.tmpfs_mb,
                 start_timeout: float = 120.0, runtime: str | None = None):
        super().__init__(timeout, workers)
        # e.g. "runsc" (gVisor) for a kernel boundary too; default: the engine's own (runc)
        self.runtime = runtime or os.environ.get("RPS_EVALS_DOCKER_RUNTIME") or None
        self.memory_mb = memory_mb
        self._client = docker_client()
        self.image = image or sandbox_image(self._client)
        self.depth = max(1, depth)
        self.pids_limit = pids_limit
        self.tmpfs_mb = tmpfs_mb
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(4)
        check_image(self.image, self._client)
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

    def _submit(self, request_id: int, line: bytes, program: Program, future: Future) -> None:
        if not self._started:
            self.start()
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            if all(slot.broken for slot in self._slots):
                raise SandboxUnavailable(self._slots[0].broken)
            self._queue.append(_Item(request_id, future, program, line))
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
                item.future.set_result(runner_failure(item.program, "the executor was closed first"))
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
        uid = 100_000 + secrets.randbelow(1_000_000_000)  # the programs' own uid: RLIMIT_NPROC counts per uid
        memory = self.memory_mb + LIMITS.runner_mb
        return dict(
            image=self.image,
            command=runner_command(RUNNER_IN_IMAGE, timeout=self.timeout, memory_mb=self.memory_mb, extra=(
                "--exclusive", "--hello", "--nproc", str(max(8, self.pids_limit // 2)), "--program-uid", str(uid),
                "--scratch", "/tmp", "--scratch", "/dev/shm")),
            name=f"rps-sandbox-{self.token}-{slot.index}-{slot.generation}",
            user="0:0",  # the runner only: it starts every program as `uid`, see cap_add
            stdin_open=True,
            tty=False,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={self.tmpfs_mb}m,nr_inodes={LIMITS.tmpfs_inodes},mode=1777",
                   "/dev/shm": f"rw,nosuid,nodev,noexec,size={LIMITS.shm_mb}m,nr_inodes={LIMITS.shm_inodes},mode=1777"},
            ipc_mode="private",
            mem_limit=f"{memory}m",
            memswap_limit=f"{memory}m",
            pids_limit=self.pids_limit,
            cap_drop=["ALL"],
            cap_add=list(RUNNER_CAPABILITIES),
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
            slot.sendq = queue.SimpleQueue()
            generation = slot.generation
            threading.Thread(target=self._read_slot, args=(slot, generation, raw, ready), daemon=True,
                             name=f"rps-sandbox-{slot.index}").start()
            threading.Thread(target=_write_slot, args=(slot.sendq, raw), daemon=True,
                             name=f"rps-sandbox-{slot.index}-send").start()
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
        if slot.sendq is not None:
            slot.sendq.put(None)
        _close_socket(slot.sock)
        if slot.container_id:
            try:
                _force_remove(self._client, slot.container_id)
            except Exception:
                pass

    def _read_slot(self, slot: _Slot, generation: int, raw, ready: threading.Event) -> None:
        """Demultiplex the attach stream: runner answers on stdout, diagnostics on stderr."""
        stream = raw.makefile("rb")
        pending: list[bytes] = []  # the answer line so far, in pieces (answers can be megabytes)
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
                while payload:
                    cut = payload.find(b"\n")
                    if cut < 0:
                        pending.append(payload)
                        break
                    pending.append(payload[:cut])
                    line, pending = b"".join(pending), []
                    payload = payload[cut + 1:]
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
        answer = read_answer(line)
        if answer is None:
            return
        if answer.get("ready"):
            slot.ready = True
            ready.set()
            with self._lock:
                self._pump()
            return
        if answer.get("retire"):  # it found its state changed or its cleanup overran, and exits
            with self._lock:
                if slot.generation == generation:
                    slot.retiring = True
                    slot.ready = False
            return
        with self._lock:
            item = None
            if slot.generation == generation:
                item = slot.outstanding.pop(answer.get("id"), None)
                if item is None and answer.get("id") is None and slot.outstanding:
                    # a request the runner could not read (we never send one: defence in depth):
                    # it answers the oldest, so that no future waits forever
                    item = slot.outstanding.popitem(last=False)[1]
            self._pump()
        if item is not None and not item.future.done():
            item.future.set_result(execution_from_answer(item.program, answer))

    def _on_death(self, slot: _Slot, generation: int) -> None:
        """The runner's stream ended: blame the program it was running, re-queue the rest, restart."""
        with self._lock:
            if slot.generation != generation or self._closed:
                return
            slot.ready = False
            slot.generation += 1
            items = list(slot.outstanding.values())
            slot.outstanding.clear()
            if slot.retiring:  # it answered the program it blamed: none of these had started
                slot.retiring = False
                self._queue.extendleft(reversed(items))
                items = []
            self._queue.extendleft(reversed(items[1:]))  # had not started: they run elsewhere or later
            old_id, slot.container_id = slot.container_id, None
            old_sock, slot.sock = slot.sock, None
            if slot.sendq is not None:
                slot.sendq.put(None)
        if items:
            tail = slot.stderr_tail.decode("utf-8", "replace").strip()[-500:]
            why = "the sandbox container stopped while running this program"
            items[0].future.set_result(runner_failure(items[0].program, why + (f" ({tail})" if tail else "")))
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
                slot.sendq.put(item.line)  # never send here: the lock is held and the runner may be busy writing


def _write_slot(lines: queue.SimpleQueue, raw) -> None:
    """Send one container's requests until None or a dead socket (its reader sees the end and
    restarts it; the requests not answered go with it)."""
    while True:
        line = lines.get()
        if line is None:
            return
        try:
            raw.sendall(line)
        except OSError:
            return


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
