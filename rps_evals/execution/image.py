"""The sandbox image (build, tag) and the Docker engine client; cleanup of leftover containers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from importlib.resources import as_file, files
from pathlib import Path

from rps_evals.execution import SandboxUnavailable

LABEL = "rps-evals.sandbox"  # every container we start carries it (leftovers: docker ps -f label=...)


def _default_base_image() -> str:
    """The Dockerfile's own BASE_IMAGE default (the official slim Python image)."""
    text = (files("rps_evals.sandbox") / "Dockerfile").read_text(encoding="utf-8")
    return re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M).group(1)


DEFAULT_BASE_IMAGE = _default_base_image()
# What sandbox/build_offline.sh imports from an mmdebstrap root (Debian's python3 and pip).
OFFLINE_BASE_IMAGE = f"rps-evals-sandbox-base:{os.environ.get('RPS_SANDBOX_SUITE', 'bookworm')}-pip"


def sandbox_hash(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    """12 hex digits of sha256(runner/*.py in name order + Dockerfile + requirements.txt + "BASE_IMAGE=<base>"):
    the image tag, so an image built from other sources, pins or base (another Python) is never
    taken for this one (sandbox/build_offline.sh computes the same)."""
    sandbox = files("rps_evals.sandbox")
    runner = sorted((entry for entry in (sandbox / "runner").iterdir() if entry.name.endswith(".py")),
                    key=lambda entry: entry.name.encode())
    data = b"".join(entry.read_bytes() for entry in runner) + (sandbox / "Dockerfile").read_bytes()
    data += (sandbox / "requirements.txt").read_bytes()
    return hashlib.sha256(data + f"BASE_IMAGE={base_image}".encode()).hexdigest()[:12]


def image_tag(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    return f"rps-evals-sandbox:{sandbox_hash(base_image)}"


SANDBOX_IMAGE = image_tag(DEFAULT_BASE_IMAGE)  # built online (`rps-evals sandbox build`)
OFFLINE_SANDBOX_IMAGE = image_tag(OFFLINE_BASE_IMAGE)  # built by sandbox/build_offline.sh


def sandbox_image(client=None) -> str:
    """The image programs run in: $RPS_EVALS_SANDBOX_IMAGE, else this package's image built on the
    default base, else the one built offline, whichever exists (SANDBOX_IMAGE when none does, so
    the error names what to build)."""
    chosen = os.environ.get("RPS_EVALS_SANDBOX_IMAGE")
    if chosen:
        return chosen
    try:
        client = client or docker_client()
    except SandboxUnavailable:
        return SANDBOX_IMAGE
    for candidate in (SANDBOX_IMAGE, OFFLINE_SANDBOX_IMAGE):
        if _image_exists(client, candidate):
            return candidate
    return SANDBOX_IMAGE


_IDENTITIES: dict[str, dict] = {}
_VERSIONS_CODE = "import platform, numpy, scipy; print(platform.python_version(), numpy.__version__, scipy.__version__)"
_UNKNOWN_VERSIONS = {"python": None, "numpy": None, "scipy": None}


def image_identity(image: str | None = None) -> dict:
    """{image: {tag, id}, python, numpy, scipy} of a sandbox image, the versions read by running its own
    python3 once (cached per image id for the process); unknown fields are None."""
    try:
        client = docker_client()
        image = image or sandbox_image(client)
        image_id = client.images.get(image).id
    except Exception:  # no engine, no such image: the run itself reports that
        return {"image": {"tag": image or SANDBOX_IMAGE, "id": None}, **_UNKNOWN_VERSIONS}
    if image_id not in _IDENTITIES:
        _IDENTITIES[image_id] = _cached_versions(image_id) or _ask_image(client, image_id)
    return {"image": {"tag": image, "id": image_id}, **_IDENTITIES[image_id]}


def _versions_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rps-evals" / "image-versions.json"


def _cached_versions(image_id: str) -> dict | None:
    """An image id names its content, so versions asked of it once hold for good (saves a container
    start, about a second on a busy machine, in every later process)."""
    try:
        versions = json.loads(_versions_cache().read_text(encoding="utf-8")).get(image_id)
        return versions if set(versions) == set(_UNKNOWN_VERSIONS) else None  # else cached by an older rps-evals
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _ask_image(client, image_id: str) -> dict:
    versions = dict(_UNKNOWN_VERSIONS)
    try:
        out = client.containers.run(image_id, ["python3", "-I", "-c", _VERSIONS_CODE], remove=True,
                                    network_disabled=True, labels={LABEL: "versions"})
        versions["python"], versions["numpy"], versions["scipy"] = out.decode().split()
    except Exception:
        return versions  # not cached: asked again next time
    try:
        path = _versions_cache()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        known[image_id] = versions
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the container start next time
    return versions


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


BUILD_HELP = ("run `rps-evals sandbox build` (`--mode offline` where no registry is reachable; from "
              "Python: rps_evals.execution.image.ensure_image()); see docs/sandbox.md")


def check_image(image: str | None = None, client=None) -> str:
    """The sandbox image's name if it is built here, else SandboxUnavailable saying how to build it
    (it is never pulled): the one check, run before any container is started."""
    client = client or docker_client()
    image = image or sandbox_image(client)
    if not _image_exists(client, image):
        raise SandboxUnavailable(f"the sandbox image {image} is not built yet: {BUILD_HELP}")
    return image


def ensure_image(image: str | None = None, *, offline: bool | None = None, base_image: str | None = None,
                 force: bool = False, quiet: bool = False) -> str:
    """Build the sandbox image unless it exists; return its name. For `rps-evals sandbox build`.

    online: `docker build` of sandbox/Dockerfile (BASE_IMAGE default: the official slim Python image);
    offline: sandbox/build_offline.sh (mmdebstrap base from the host's apt sources). With
    offline=None the online build is tried first and the offline one where that fails.
    """
    client = docker_client()
    if image is None and base_image is None and not force:
        for built in ((SANDBOX_IMAGE, OFFLINE_SANDBOX_IMAGE) if offline is None else
                      (OFFLINE_SANDBOX_IMAGE,) if offline else (SANDBOX_IMAGE,)):
            if _image_exists(client, built):
                return built
    if image is None:
        image = OFFLINE_SANDBOX_IMAGE if offline and base_image is None else image_tag(base_image or DEFAULT_BASE_IMAGE)
    if not force and _image_exists(client, image):
        return image
    errors = []
    if offline is not True:
        try:
            with as_file(files("rps_evals.sandbox")) as context:
                buildargs = {"SANDBOX_HASH": sandbox_hash(base_image or DEFAULT_BASE_IMAGE)}
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
    if offline is None and image == SANDBOX_IMAGE:
        image = OFFLINE_SANDBOX_IMAGE  # the same sources on the offline base: another tag
    if image != OFFLINE_SANDBOX_IMAGE:
        raise SandboxUnavailable(f"the offline build makes {OFFLINE_SANDBOX_IMAGE} only, not {image}; "
                                 + "; ".join(errors))
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
