"""The sandbox image (build, tag) and the Docker engine client; cleanup of leftover containers."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.resources import as_file, files

from rps_evals.execution import SandboxUnavailable

LABEL = "rps-evals.sandbox"  # every container we start carries it (leftovers: docker ps -f label=...)


def sandbox_hash() -> str:
    """12 hex digits of sha256(runner.py + Dockerfile): the image tag, so an image built from other
    sources is never used by mistake (sandbox/build_offline.sh computes the same)."""
    sandbox = files("rps_evals.sandbox")
    data = (sandbox / "runner.py").read_bytes() + (sandbox / "Dockerfile").read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


SANDBOX_IMAGE = f"rps-evals-sandbox:{sandbox_hash()}"


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
