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
