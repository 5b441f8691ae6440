"""Run Python subprocesses with the network unreachable: a `sitecustomize` on PYTHONPATH makes every
name lookup and connection to anything but this machine fail (as on a machine without internet)
and writes each attempt to a file, so a test can check that no request left."""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = '''
import os, socket

_LOG = os.environ["RPS_NETWORK_GUARD_LOG"]
_LOCAL = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "", None)


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise OSError(101, f"network unreachable (test guard): {what}")


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in _LOCAL and not str(name).startswith("127."):
        _refuse(f"lookup {name}")
    return _getaddrinfo(host, *args, **kwargs)


_connect = socket.socket.connect


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in _LOCAL and not str(host).startswith("127."):
            _refuse(f"connect {address}")
    return _connect(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
'''


def guarded_env(env: dict[str, str], where: Path) -> tuple[dict[str, str], Path]:
    """`env` with the guard on; returns it and the file that lists attempted requests."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = where / "requests.log"
    path = os.pathsep.join(p for p in (str(where), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "RPS_NETWORK_GUARD_LOG": str(log)}, log
