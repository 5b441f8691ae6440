"""The supervisor: reads requests, starts each program through the zygote, enforces the time limits,
collects results, kills leftovers, has the scratch directories cleaned and checks its own state;
it answers, or retires when a program left or changed something it cannot undo.

If processes were still left after every round of the sweep, the cleanup overran or the state
changed, that program is answered `error` with the reason and the runner retires: it writes
`{"id": null, "retire": reason}` and exits, and the host starts a fresh runner for the requests it
had not answered. A request line it cannot read is answered `bad request` with the id the line
starts with, if any.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import sys
import time

from . import limits
from .cleanup import anything_left
from .job import Job
from .limits import MAX_REQUEST_BYTES, MAX_SOURCE_CHARS, request_timeout
from .procs import cgroup_cpu_reader, cpu_seconds, own_cpu_seconds, sweep, tree_cpu_seconds
from .protocol import leading_id, np, plain_id, strict_loads
from .state import collect_unix_garbage, count_unix_sockets, free_blocks, process_state
from .zygote import Zygote


class Runner:
    def __init__(self, workers: int, config: dict, exclusive: bool = False, cleanup_limit: float = 2.0):
        self.workers = workers
        self.config = config
        self.default_timeout = config["timeout"]
        self.exclusive = exclusive
        self.scratch = config["scratch"]
        self.cleanup_limit = cleanup_limit
        self.owner = config["uid"] if config["uid"] is not None else os.getuid()  # of what programs leave
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pid
        self.queue: collections.deque[tuple[dict, bytes]] = collections.deque()
        self.stdin_open = True
        self.partial: list[bytes] = []
        self.partial_size = 0
        self.retiring = ""
        self.zygote = Zygote(config)
        self.baseline = self._states()
        self.free_at_start = dict(zip(self.scratch, free_blocks(self.scratch)))
        self.unix_sockets_at_start = count_unix_sockets() if exclusive else 0
        # One program at a time in its own container: the container's cgroup counts every CPU second
        # its processes used, also those of children the kernel reaped itself (SIGCHLD ignored),
        # which no /proc sum sees.
        self.cgroup_cpu = cgroup_cpu_reader() if exclusive else None

    def _states(self) -> dict:
        return {"runner": process_state(0), "zygote": process_state(self.zygote.pid)}

    def serve(self, hello: bool = False) -> None:
        if hello:
            self._emit({"id": None, "ready": True, "pid": os.getpid(), "uid": os.getuid(),
                        "program_uid": self.owner, "zygote": self.zygote.pid,
                        "python": sys.version.split()[0], "numpy": getattr(np, "__version__", None)})
        try:
            self.selector.register(0, selectors.EVENT_READ, ("stdin", None))
            os.set_blocking(0, False)
        except PermissionError:  # a regular file cannot be polled: it is all there, read it now
            while self.stdin_open:
                self._read_stdin()
        while (self.stdin_open or self.queue or self.jobs) and not self.retiring:
            while self.queue and len(self.jobs) < self.workers and not self.retiring:
                self._start(*self.queue.popleft())
            timeout = None
            if self.jobs:
                timeout = max(0.0, min(j.deadline for j in self.jobs.values()) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                kind, job = key.data
                if kind == "stdin":
                    self._read_stdin()
                elif job.pid not in self.jobs:
                    continue
                elif kind == "exit":
                    self._drain(job)
                    self._kill(job)
                else:
                    self._read_job(job, key.fd, kind)
                if self.retiring:
                    break
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if self.retiring:
                    break
                if job.must_kill:
                    self._kill(job)
                elif now >= job.wall_deadline:
                    job.timed_out = "wall"
                    self._kill(job)
                elif now >= job.next_cpu_check and job.cpu_over(self._cpu_of(job) or 0.0, now):
                    job.timed_out = "cpu"
                    self._kill(job)
        if self.retiring:  # programs still running here were not answered: the host runs them again
            for job in list(self.jobs.values()):
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except OSError:
                    pass
            self._emit({"id": None, "retire": self.retiring})

    def _programs_cpu(self) -> float:
        """CPU seconds the container's processes but us and the zygote used, ended ones included."""
        return self.cgroup_cpu() - own_cpu_seconds(os.getpid()) - own_cpu_seconds(self.zygote.pid)

    def _cpu_of(self, job: Job) -> float | None:
        """What `job`'s program has used so far, as measured here (never as it reports): with the
        container's cgroup, everything since it started; in exclusive mode otherwise every live
        process but us and the zygote (one program at a time); elsewhere its process and their
        live descendants (None once its process is gone)."""
        if self.cgroup_cpu is not None:
            try:
                return self._programs_cpu() - job.cpu_base
            except (OSError, ValueError, IndexError):
                pass
        if self.exclusive:
            return cpu_seconds(int(p) for p in os.listdir("/proc")
                               if p.isdigit() and p != "1" and int(p) != self.zygote.pid)
        return tree_cpu_seconds(job.pid)

    def _read_stdin(self) -> None:
        try:
            data = os.read(0, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self.stdin_open = False
            if 0 in self.selector.get_map():
                self.selector.unregister(0)
            data = b"\n"
        while data:
            cut = data.find(b"\n")
            if cut < 0:
                if self.partial_size <= MAX_REQUEST_BYTES:  # past it, the rest of the line is dropped
                    self.partial.append(data)
                self.partial_size += len(data)
                return
            line = b"".join(self.partial) + data[:cut]
            size = self.partial_size + cut
            self.partial, self.partial_size = [], 0
            data = data[cut + 1:]
            if line.strip():
                self._on_request(line, size)

    def _on_request(self, line: bytes, size: int) -> None:
        request = None
        try:
            if size > MAX_REQUEST_BYTES:
                raise ValueError(f"the request is {size} bytes, more than {MAX_REQUEST_BYTES}")
            request = strict_loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("source"), str):
                raise ValueError("a request needs a string 'source'")
            inputs = request.setdefault("inputs", [])
            if not isinstance(inputs, list):
                raise ValueError("'inputs' must be a list")
            num_tests = request.get("num_tests", len(inputs))
            if not isinstance(num_tests, int) or isinstance(num_tests, bool):
                raise ValueError("'num_tests' must be an integer")
        except ValueError as exc:
            self._emit({"id": plain_id(request) if request is not None else leading_id(line), "status": "error",
                        "outputs": [], "call_errors": [], "error": f"bad request: {exc}"})
            return
        meta = {"id": plain_id(request), "num_tests": num_tests, "calls": len(inputs),
                "timeout": request_timeout(request, self.default_timeout)}
        if len(request["source"]) > MAX_SOURCE_CHARS:
            self._emit({"id": meta["id"], "status": "error", "outputs": [None] * len(inputs),
                        "call_errors": [None] * len(inputs),
                        "error": f"the program is {len(request['source'])} characters long; the sandbox "
                                 f"runs programs of at most {MAX_SOURCE_CHARS}"})
            return
        self.queue.append((meta, line))

    def _start(self, meta: dict, line: bytes) -> None:
        request_fd = os.memfd_create("rps-request", os.MFD_CLOEXEC)
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(request_fd, view):]
            try:
                cpu_base = self._programs_cpu() if self.cgroup_cpu is not None else 0.0
            except (OSError, ValueError, IndexError):
                cpu_base, self.cgroup_cpu = 0.0, None
            pid = self.zygote.spawn(b"p", [request_fd, result_w, output_w])
        except (OSError, RuntimeError) as exc:
            pid, why = -1, str(exc)
        else:
            why = "the sandbox could not fork a process for it"
        finally:
            for fd in (request_fd, result_w, output_w):
                os.close(fd)
        if pid < 0:
            os.close(result_r)
            os.close(output_r)
            self._emit({"id": meta["id"], "status": "error", "outputs": [None] * meta["calls"],
                        "call_errors": [None] * meta["calls"], "error": why})
            if self._zygote_dead():
                self.retiring = "the sandbox's program starter (zygote) died"
            return
        os.set_blocking(result_r, False)
        os.set_blocking(output_r, False)
        job = Job(meta, pid, result_r, output_r, meta["timeout"], measure=lambda: self._cpu_of(job))
        job.cpu_base = cpu_base
        self.jobs[pid] = job
        self.selector.register(result_r, selectors.EVENT_READ, ("result", job))
        self.selector.register(output_r, selectors.EVENT_READ, ("output", job))
        try:  # a daemon the program left may hold its pipes open: its exit is the end, not their EOF
            job.pidfd = os.pidfd_open(pid)
            self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", job))
        except (AttributeError, OSError):
            job.pidfd = None

    def _read_job(self, job: Job, fd: int, kind: str) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            job.on_result_bytes(data) if kind == "result" else job.on_output_bytes(data)
            return
        self.selector.unregister(fd)
        os.close(fd)
        job.open_fds -= 1
        if job.open_fds == 0:
            self._finish(job)

    def _drain(self, job: Job) -> None:
        """Read what the exited program left in its pipes (a live descendant may keep adding)."""
        for fd, on_bytes in ((job.result_fd, job.on_result_bytes), (job.output_fd, job.on_output_bytes)):
            for _ in range(64):
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                on_bytes(data)

    def _kill(self, job: Job) -> None:
        for fd in (job.result_fd, job.output_fd):
            try:
                self.selector.unregister(fd)
                os.close(fd)
            except (KeyError, ValueError, OSError):
                pass
        job.open_fds = 0
        self._finish(job)

    def _finish(self, job: Job) -> None:
        if job.pidfd is not None:
            try:
                self.selector.unregister(job.pidfd)
            except (KeyError, ValueError):
                pass
            os.close(job.pidfd)
            job.pidfd = None
        try:
            os.killpg(job.pid, signal.SIGKILL)  # the program and anything it forked
        except OSError:
            pass
        try:  # the zygote reaps it and tells us how it ended
            status = self.zygote.wait(job.pid, timeout=30)
        except RuntimeError:
            status = None
        if status is None:
            self.retiring = "the sandbox's program starter (zygote) stopped answering"
            status = 0
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            job.exit_info = f"killed by signal {signal.Signals(signum).name}"
            job.cpu_limited = signum == signal.SIGXCPU
        else:
            job.exit_info = f"exit code {os.WEXITSTATUS(status)}"
        del self.jobs[job.pid]
        swept = self._sweep()
        if not self.exclusive:  # (exclusive: _still_held does it, and waits) an SCM_RIGHTS cycle of
            collect_unix_garbage()  # sockets outlives the program with what it carries; best effort here
        answer = job.answer()
        problem = self.retiring or swept or self._clean_up() or self._still_held() or self._state_changed()
        if problem:
            answer["status"], answer["error"] = "error", problem
            self.retiring = problem
        self._emit(answer)

    def _sweep(self) -> str:
        return sweep(set(self.jobs) | {self.zygote.pid}, self.zygote.pid, self.exclusive)

    def _clean_up(self) -> str:
        """Have what the program left removed, within the cleanup limit; '' or why it failed."""
        if not anything_left(self.scratch, self.owner, self.exclusive):
            return ""
        try:
            pid = self.zygote.spawn(b"c", [])
        except (OSError, RuntimeError) as exc:
            return f"the runner could not clean up after the program: {exc}"
        if pid < 0:
            return "the runner could not fork a cleaner after the program"
        try:
            status = self.zygote.wait(pid, self.cleanup_limit)
            done = status is not None
            if not done:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                self.zygote.wait(pid, timeout=30)
        except RuntimeError as exc:
            return f"the runner could not clean up after the program: {exc}"
        if not done:
            return (f"the program left more files in {', '.join(self.scratch)} than the runner can remove "
                    f"in {self.cleanup_limit:g} s; the runner was replaced")
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return "the program left files or IPC objects the runner could not remove; the runner was replaced"
        return ""

    def _held(self) -> list[str]:
        """What a dead program may still hold, as `_still_held` compares it with the start: free
        space of the scratch tmpfs, and (in exclusive mode, where the network namespace is the
        container's) the number of unix sockets, which an SCM_RIGHTS cycle keeps alive."""
        if not self.exclusive:  # elsewhere others share the file systems and the network namespace
            return []
        held = []
        for root, free in zip(self.scratch, free_blocks(self.scratch)):
            if free < self.free_at_start.get(root, free):
                held.append(f"space in {root}")
        if count_unix_sockets() > self.unix_sockets_at_start:
            held.append("unix sockets (and what they carry: files, memory)")
        return held

    def _still_held(self) -> str:
        """'' once what the program held is back; otherwise why the runner retires. An SCM_RIGHTS
        cycle of sockets (carrying unlinked files or memfds) outlives its processes until the
        kernel's unix garbage collector runs: trigger it and wait a little before blaming."""
        if not self._held():
            return ""
        collect_unix_garbage()
        deadline = time.monotonic() + limits.GC_WAIT
        while (held := self._held()) and time.monotonic() < deadline:
            time.sleep(0.002)
        if not held:
            return ""
        return (f"the program left {', '.join(held)} held after it ended, which the runner could not "
                f"free; the runner was replaced")

    def _zygote_dead(self) -> bool:
        try:
            return os.waitpid(self.zygote.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            return True

    def _state_changed(self) -> str:
        if self._zygote_dead():
            return "the program killed the sandbox's program starter; the runner was replaced"
        try:
            now = self._states()
        except OSError as exc:
            return f"the runner could not check its own state after the program ({exc}); it was replaced"
        changed = [f"{what} of the {who}" for who in now for what in now[who]
                   if now[who][what] != self.baseline[who][what]]
        if changed:
            return f"the program changed the sandbox runner's state ({', '.join(changed)}); the runner was replaced"
        return ""

    def _emit(self, answer: dict) -> None:
        try:
            text = json.dumps(answer, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            calls = len(answer.get("outputs") or [])
            text = json.dumps({"id": answer.get("id"), "status": "error", "outputs": [None] * calls,
                               "call_errors": [None] * calls,
                               "error": "the program's results could not be encoded"})
        data = (text + "\n").encode()
        while data:
            try:
                data = data[os.write(1, data):]
            except BlockingIOError:
                time.sleep(0.001)

