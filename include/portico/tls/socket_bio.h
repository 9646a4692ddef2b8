// SPDX-License-Identifier: Apache-2.0
#pragma once
// The BIO a TLS connection reads and writes its socket through: OpenSSL's socket BIO
// (SSL_set_fd) with recv/send instead of read/write, and a control callback that answers
// OpenSSL's questions at once.
//
// Why not SSL_set_fd: OpenSSL 3.0 asks its BIO about 11 control questions per record read and
// written (kernel TLS offload, flush, EOF), and the socket BIO's answer is a switch of ~43
// instructions each; read(2)/write(2) on a socket go through the VFS layer (rw_verify_area,
// fdget_pos, sock_*_iter) before reaching the socket, which recv(2)/send(2) skip. Per wss
// message (one record each way) that was ~530 instructions of user space and two VFS passes
// (bench/RESULTS.md, "wss per-message TLS cost and idle TLS memory"). The behaviour is the socket BIO's: the same errors are retried
// (BIO_sock_non_fatal_error), errno is cleared before each call (so that SSL_ERROR_SYSCALL with
// errno 0 still means a TCP close), recv's 0 sets the BIO's EOF (OpenSSL's unexpected-EOF check),
// the socket is never closed by the BIO (its owner closes it), and SSL_get_fd still answers.
// send() adds MSG_NOSIGNAL: a peer that went away is an EPIPE, never a SIGPIPE.

#include "portico/tls/handles.h"

namespace portico::tls {

// Attaches the connected socket `fd` to `ssl` for reading and writing (as SSL_set_fd does).
// False when OpenSSL is out of memory (nothing attached).
bool attachSocket(SSL* ssl, int fd);

}  // namespace portico::tls
