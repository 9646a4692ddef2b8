# SPDX-License-Identifier: Apache-2.0
"""Whether this machine lets a process make an io_uring, for the tests run with `io_uring: on`
(PORTICO_TEST_IO_URING=on): they are skipped, with the reason, when io_uring_setup is refused
(kernel.io_uring_disabled, a seccomp profile, an old kernel), never failed."""

import ctypes
import os

_SYS_IO_URING_SETUP = 425  # x86-64 and arm64 alike (the new syscall table)
_cached = None


def io_uring_refusal():
    """None when a ring can be made, else why not (a sentence)."""
    global _cached
    if _cached is not None:
        return _cached or None
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(_SYS_IO_URING_SETUP, 4, params)
    if fd >= 0:
        os.close(fd)
        _cached = ""
    else:
        err = ctypes.get_errno()
        _cached = "io_uring_setup refused on this machine: %s" % os.strerror(err)
    return _cached or None


def test_mode():
    """The io_uring value the harness adds to every configuration (PORTICO_TEST_IO_URING), or None."""
    return os.environ.get("PORTICO_TEST_IO_URING") or None


def deny_io_uring():
    """A preexec_fn: from here on io_uring_setup fails with EPERM in this process and its
    children (a seccomp filter, as a container profile that blocks io_uring does), so a test can
    see what Portico does where the kernel refuses a ring without changing the machine's
    kernel.io_uring_disabled."""
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    program = (SockFilter * 4)(
        SockFilter(0x20, 0, 0, 0),                      # load the syscall number
        SockFilter(0x15, 0, 1, _SYS_IO_URING_SETUP),    # io_uring_setup?
        SockFilter(0x06, 0, 0, 0x00050000 | 1),         # return ERRNO(EPERM)
        SockFilter(0x06, 0, 0, 0x7fff0000))             # allow the rest
    fprog = SockFprog(len(program), program)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
