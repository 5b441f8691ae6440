"""Removing what a program left in the scratch directories (and, in exclusive mode, SysV/POSIX IPC
objects): done by a cleaner forked from the zygote as the programs' uid, never by the runner
itself, within the cleanup limit (supervisor.py enforces it)."""

from __future__ import annotations

import os
import stat

from . import libc
from .program import take_fds
from .protocol import EXIT

_IPC_KINDS = ("shm", "sem", "msg")


def anything_left(scratch: tuple[str, ...], uid: int, exclusive: bool) -> bool:
    """Did the last program leave a file of `uid` in the scratch directories (or, in exclusive
    mode, an IPC object)? Cheap: stops at the first one."""
    for root in scratch:
        try:
            with os.scandir(root) as entries:
                for entry in entries:
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        return True
        except OSError:
            continue
    if not exclusive:
        return False
    for kind in _IPC_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                if len(f.read().splitlines()) > 1:
                    return True
        except OSError:
            pass
    try:
        return bool(os.listdir("/dev/mqueue"))
    except OSError:
        return False


def _remove_entry(name: str) -> None:
    """Delete `name` (relative to the cwd) and everything under it: iteratively and by chdir, so
    that no depth, path length, mode (we own it: chmod first) or file type (fifos and sockets are
    never opened) can stop it."""
    if not stat.S_ISDIR(os.lstat(name).st_mode):
        os.unlink(name)
        return
    path = [name]
    os.chmod(name, stat.S_IRWXU)
    os.chdir(name)
    while path:
        subdir, removed = None, False
        with os.scandir(".") as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdir = entry.name
                    break
                os.unlink(entry.name)
                removed = True
        if subdir is not None:
            os.chmod(subdir, stat.S_IRWXU)
            os.chdir(subdir)
            path.append(subdir)
        elif not removed:  # a scan that found nothing: the directory is empty
            os.chdir("..")
            os.rmdir(path.pop())


def cleaner_main(config: dict, fds: list[int]) -> None:
    """Forked from the zygote, as the program's uid: remove what the last program left. Exit 0
    when nothing is left. The supervisor kills it at its deadline."""
    try:
        os.setsid()
        take_fds([os.open(os.devnull, os.O_RDWR)] * 3, [0, 1, 2])
        uid = config["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        me = os.getuid()
        for root in config["scratch"]:
            try:
                os.chdir(root)
                names = [e.name for e in os.scandir(".") if e.stat(follow_symlinks=False).st_uid == me]
            except OSError:
                continue
            for name in names:
                try:
                    os.chdir(root)
                    _remove_entry(name)
                except OSError:
                    pass
        os.chdir("/")
        if config["exclusive"]:
            _remove_ipc()
        EXIT(1 if anything_left(config["scratch"], me, config["exclusive"]) else 0)
    finally:
        EXIT(2)


def _remove_ipc() -> None:
    removers = {"shm": lambda i: libc.shmctl(i, 0, None), "sem": lambda i: libc.semctl(i, 0, 0),
                "msg": lambda i: libc.msgctl(i, 0, None)}  # IPC_RMID is 0 for all three
    for kind in _IPC_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        for ipc_id in ids:
            removers[kind](ipc_id)
    try:
        for name in os.listdir("/dev/mqueue"):
            try:
                os.unlink(os.path.join("/dev/mqueue", name))
            except OSError:
                pass
    except OSError:
        pass

