// SPDX-License-Identifier: Apache-2.0
// socket_call_cost: CPU time of read(2)/write(2) against recv(2)/send(2) on a loopback TCP
// connection, one small record at a time (as a wss message's TLS record: 86 bytes by default).
// A side measurement for the TLS socket BIO (include/portico/tls/socket_bio.h): both pairs do the
// same TCP work; the difference is the VFS layer that read/write pass through. Rounds alternate
// the two ways; CPU = utime + stime of this process (sender and receiver are both here). On a
// shared machine the timed difference drowns in noise (+-3% between rounds); ONLY (vfs or sock)
// runs one way alone, for `perf record -e cpu-clock`, whose per-symbol shares are not timed:
// the kernel functions only one way passes through (vfs_read/vfs_write, rw_verify_area,
// fdget_pos, sock_read_iter/sock_write_iter... against __sys_sendto/__sys_recvfrom, fdget).
//
//   g++ -std=c++20 -O2 -o socket_call_cost bench/socket_call_cost.cpp
//   ./socket_call_cost [ROUNDS=7] [CALLS=200000] [BYTES=86] [ONLY]
//   perf record -e cpu-clock -F 10000 ./socket_call_cost 1 300000 86 vfs; perf report --sort symbol
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

double cpuSeconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A connected loopback TCP pair (TCP_NODELAY on the sender, as Portico's sockets).
void connectedPair(int& a, int& b) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
        std::perror("listen");
        std::exit(1);
    }
    a = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::perror("connect");
        std::exit(1);
    }
    b = accept(listener, nullptr, nullptr);
    int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(listener);
}

// Microseconds of CPU per call pair (one send and one receive of `bytes`).
double run(int a, int b, int calls, int bytes, bool vfs) {
    std::vector<char> out(static_cast<std::size_t>(bytes), 'x'), in(16709);
    const double start = cpuSeconds();
    for (int i = 0; i < calls; ++i) {
        const ssize_t w = vfs ? write(a, out.data(), out.size()) : send(a, out.data(), out.size(), MSG_NOSIGNAL);
        ssize_t got = 0;
        while (got < w) {
            const ssize_t r = vfs ? read(b, in.data(), in.size()) : recv(b, in.data(), in.size(), 0);
            if (r <= 0) std::exit(1);
            got += r;
        }
    }
    return (cpuSeconds() - start) / calls * 1e6;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
    const int calls = argc > 2 ? std::atoi(argv[2]) : 200000;
    const int bytes = argc > 3 ? std::atoi(argv[3]) : 86;
    const std::string only = argc > 4 ? argv[4] : "";
    int a = -1, b = -1;
    connectedPair(a, b);
    if (!only.empty()) {
        for (int r = 0; r < rounds; ++r) std::printf("%s: %.3f us per pair\n", only.c_str(), run(a, b, calls, bytes, only == "vfs"));
        return 0;
    }
    run(a, b, calls / 10, bytes, true);  // warm-up
    std::vector<double> vfs, sock;
    for (int r = 0; r < rounds; ++r) {
        vfs.push_back(run(a, b, calls, bytes, true));
        sock.push_back(run(a, b, calls, bytes, false));
    }
    std::printf("%d rounds x %d calls of %d bytes: write+read %.3f us, send+recv %.3f us per pair (median; "
                "send+recv / write+read = %.3f)\n", rounds, calls, bytes, median(vfs), median(sock),
                median(sock) / median(vfs));
    for (int r = 0; r < rounds; ++r) std::printf("  round %d: %.3f / %.3f\n", r + 1, vfs[static_cast<std::size_t>(r)], sock[static_cast<std::size_t>(r)]);
    return 0;
}
