// SPDX-License-Identifier: Apache-2.0
#pragma once
// `tls.keylog_file`: TLS secrets in the NSS key log format ("CLIENT_RANDOM ...",
// "CLIENT_HANDSHAKE_TRAFFIC_SECRET ...", one per line), as browsers write them for SSLKEYLOGFILE,
// so that Wireshark or tshark can decrypt a capture. Debugging only: whoever reads the file can
// decrypt every session it covers.
//
// One KeyLog per file and configuration, shared by every listener and upstream that names the
// file and by every worker thread; a reload opens the files anew (a file moved away is created
// again) while connections of the old configuration keep writing to the descriptor they had.

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "portico/core/handles.h"

namespace portico::tls {

class KeyLog {
public:
    // Opens `path` for appending (O_APPEND | O_CREAT, mode 0600; an existing file readable by
    // others is narrowed to 0600). Returns nullptr with `error` set ("cannot open: ...").
    static std::shared_ptr<KeyLog> open(const std::string& path, std::string& error);

    // Appends `line` (without its newline) and a newline in one write(2), so lines from several
    // threads never interleave. Thread-safe, no allocation; a failed write is dropped.
    void write(std::string_view line) const noexcept;

    const std::string& path() const { return path_; }

private:
    KeyLog(std::string path, core::UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

    std::string path_;
    core::UniqueFd fd_;
};

// The key logs of one configuration, by path: each file is opened once.
class KeyLogs {
public:
    // The KeyLog for `path` (opened on first use), or nullptr with `error` set.
    std::shared_ptr<KeyLog> get(const std::string& path, std::string& error);

private:
    std::map<std::string, std::shared_ptr<KeyLog>> files_;
};

}  // namespace portico::tls
