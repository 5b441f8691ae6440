"""The zygote: the clean parent of every program and cleaner, forked before the first request is
read. It imports what programs import (numpy, main.PRELOAD) and then only forks and reaps: it
never holds a request, an output or a program's source. For every program the supervisor hands
it three descriptors (the request in a memfd, the result pipe, the output pipe); it forks, reaps
its children and reports their exit status to the supervisor."""

from __future__ import annotations

import os
import select
import signal
import socket
import time

from .cleanup import cleaner_main
from .program import program_main
from .protocol import EXIT

class Zygote:
    """The clean parent of every program, forked before the first request is read. It reports
    each child's start and exit status as 17-byte records (kind b"s"/b"x", pid, status) on its socket."""

    RECORD = 17

    def __init__(self, config: dict):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                zygote_loop(theirs, config)
            finally:
                EXIT(1)
        theirs.close()
        self.pid = pid
        self.sock = ours
        self.pending = b""
        self.exited: dict[int, int] = {}  # pid -> wait status, not yet claimed

    def _read(self) -> list[tuple[bytes, int, int]]:
        """Read what the zygote sent (blocks until there is something)."""
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the sandbox's program starter (zygote) died")
        self.pending += data
        records = []
        while len(self.pending) >= self.RECORD:
            record, self.pending = self.pending[:self.RECORD], self.pending[self.RECORD:]
            records.append((record[:1], int.from_bytes(record[1:9], "little", signed=True),
                            int.from_bytes(record[9:], "little", signed=True)))
        for kind, pid, status in records:
            if kind == b"x":
                self.exited[pid] = status
        return records

    def spawn(self, kind: bytes, fds: list[int]) -> int:
        """Start a program (b"p": request memfd, result and output pipes) or a cleaner (b"c");
        return its pid (-1 if it could not be forked)."""
        socket.send_fds(self.sock, [kind], fds)
        while True:
            for record_kind, pid, _ in self._read():
                if record_kind == b"s":
                    return pid

    def poll(self) -> None:
        """The socket is readable: take in the exits it reports."""
        self._read()

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        """The wait status of our child `pid` once it has exited; None if not within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.exited:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            self._read()
        return self.exited.pop(pid)


def zygote_loop(sock: socket.socket, config: dict) -> None:
    """Fork on request and reap, nothing else: it never sees a request, only descriptors. It reaps
    every child, not only those it forked: a process a program made its sibling (clone with
    CLONE_PARENT, which seccomp refuses too) would otherwise stay a zombie for the container's
    life, counted against every later program's process limit."""
    fd = sock.fileno()
    woken_r, woken_w = os.pipe()  # SIGCHLD for any child, ours or not, makes it readable
    os.set_blocking(woken_r, False)
    os.set_blocking(woken_w, False)
    signal.set_wakeup_fd(woken_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> pidfd of the processes we forked and not yet reported

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            pidfd = children.pop(pid, None)
            if pidfd is not None:  # one of ours: the supervisor waits for its status
                os.close(pidfd)
                sock.sendall(b"x" + pid.to_bytes(8, "little", signed=True) + status.to_bytes(8, "little", signed=True))

    while True:
        ready = select.select([fd, woken_r, *children.values()], [], [])[0]
        if ready != [fd]:
            try:
                while os.read(woken_r, 4096):
                    pass
            except BlockingIOError:
                pass
            reap()
        if fd not in ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1, 8)
        except OSError:
            EXIT(0)
        if not message:
            EXIT(0)
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(woken_r)
            os.close(woken_w)
            (program_main if message == b"p" else cleaner_main)(config, fds)
            EXIT(1)
        for passed in fds:
            os.close(passed)
        if pid > 0:
            children[pid] = os.pidfd_open(pid)
        sock.sendall(b"s" + pid.to_bytes(8, "little", signed=True) + bytes(8))

