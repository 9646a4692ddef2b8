// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/key_log.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace portico::tls {

std::shared_ptr<KeyLog> KeyLog::open(const std::string& path, std::string& error) {
    core::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600));
    if (!fd) {
        error = path + ": cannot open: " + std::strerror(errno);
        return nullptr;
    }
    // O_CREAT's mode applies only to a new file: a file that was already there (touched by hand,
    // left by an older tool) must not keep secrets readable by others.
    struct stat st {};
    if (fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
        fchmod(fd.get(), 0600) != 0) {
        error = path + ": cannot restrict to mode 0600: " + std::strerror(errno);
        return nullptr;
    }
    return std::shared_ptr<KeyLog>(new KeyLog(path, std::move(fd)));
}

void KeyLog::write(std::string_view line) const noexcept {
    iovec parts[2] = {{const_cast<char*>(line.data()), line.size()}, {const_cast<char*>("\n"), 1}};
    // O_APPEND: each writev lands whole at the end of the file, whatever other writers do.
    while (writev(fd_.get(), parts, 2) < 0 && errno == EINTR) {
    }
}

std::shared_ptr<KeyLog> KeyLogs::get(const std::string& path, std::string& error) {
    auto it = files_.find(path);
    if (it != files_.end()) return it->second;
    std::shared_ptr<KeyLog> log = KeyLog::open(path, error);
    if (log) files_.emplace(path, log);
    return log;
}

}  // namespace portico::tls
