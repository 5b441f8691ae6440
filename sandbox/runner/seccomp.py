"""The seccomp filter every program process installs on itself before it runs the program."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct

from . import PR_SET_DUMPABLE, PR_SET_SECCOMP, check, libc

# seccomp for programs: no execve/execveat (an exec'd binary would be dumpable again and could
# lower its oom_score_adj), no prctl(PR_SET_DUMPABLE), no clone(CLONE_PARENT) (a sibling is the
# zygote's child, out of the program's process group), clone3 answers ENOSYS (its flags are in
# memory, out of seccomp's reach; libc falls back to clone) and no AF_INET/AF_INET6/AF_NETLINK/
# AF_PACKET socket (there is no network: sockets would only outlive the program in the container's
# network namespace, readable by the next one). x32 syscalls are refused on x86_64.
# Where the runner cannot count a container's cgroup (not --exclusive), also no rt_sigaction that
# changes SIGCHLD's disposition: with SIGCHLD ignored (or SA_NOCLDWAIT) the kernel reaps children
# itself and their CPU time is added to no one's, so no /proc sum could count it.
_SECCOMP_ARCH = {  # machine: (AUDIT_ARCH, execve, execveat, prctl, clone, clone3, socket, rt_sigaction, has x32)
    "x86_64": (0xC000003E, 59, 322, 157, 56, 435, 41, 13, True),
    "aarch64": (0xC00000B7, 221, 281, 167, 220, 435, 198, 134, False),
}
CLONE_PARENT = 0x8000
REFUSED_FAMILIES = (socket.AF_INET, socket.AF_INET6, 16, 17)  # + AF_NETLINK, AF_PACKET
ENOSYS, EPERM, EAFNOSUPPORT = 38, 1, 97


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def build_filter(fixed_sigchld: bool = False):
    """The BPF program (kept alive for the zygote's forks), or None on an architecture we do not know."""
    spec = _SECCOMP_ARCH.get(os.uname().machine)
    if spec is None:
        return None
    arch, execve, execveat, prctl, clone, clone3, sock, sigaction, x32 = spec
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys, eafnosupport = (0x00050000 | e for e in (EPERM, ENOSYS, EAFNOSUPPORT))
    first_arg = 16  # offsetof(struct seccomp_data, args[0]), its low 32 bits on little endian

    def rule(nr, body):  # body runs for syscall `nr` only and ends in a return
        return [(jeq, 0, len(body), nr)] + body

    families = [(jeq, len(REFUSED_FAMILIES) - 1 - j, int(j == len(REFUSED_FAMILIES) - 1), family)
                for j, family in enumerate(REFUSED_FAMILIES)]
    code = [(load, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (load, 0, 0, 0)]
    if x32:
        code += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    code += rule(execve, [(ret, 0, 0, eperm)]) + rule(execveat, [(ret, 0, 0, eperm)])
    code += rule(clone3, [(ret, 0, 0, enosys)])
    code += rule(prctl, [(load, 0, 0, first_arg), (jeq, 0, 1, PR_SET_DUMPABLE), (ret, 0, 0, eperm), (ret, 0, 0, allow)])
    code += rule(clone, [(load, 0, 0, first_arg), (jset, 0, 1, CLONE_PARENT), (ret, 0, 0, eperm), (ret, 0, 0, allow)])
    code += rule(sock, [(load, 0, 0, first_arg), *families, (ret, 0, 0, eafnosupport), (ret, 0, 0, allow)])
    if fixed_sigchld:  # rt_sigaction(SIGCHLD, act, ...) with act != NULL (both halves of the pointer)
        code += rule(sigaction, [(load, 0, 0, first_arg), (jeq, 0, 5, signal.SIGCHLD),
                                 (load, 0, 0, first_arg + 8), (jeq, 0, 2, 0),
                                 (load, 0, 0, first_arg + 12), (jeq, 1, 0, 0),
                                 (ret, 0, 0, eperm), (ret, 0, 0, allow)])
    code += [(ret, 0, 0, allow)]
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in code))
    return buffer, _SockFprog(len(code), ctypes.addressof(buffer))
FILTER = None  # built by prepare() in the supervisor, before the zygote forks; kept alive for its forks


def prepare(fixed_sigchld: bool = False) -> None:
    global FILTER
    FILTER = build_filter(fixed_sigchld)


def install() -> None:
    """Load the filter into this process (a program, after it dropped its rights)."""
    if FILTER is not None:
        check(libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(FILTER[1]), 0, 0), "seccomp")
