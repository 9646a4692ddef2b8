// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/file_check.h"

#include <ctime>

#include "tls/certificate.h"
#include "tls/context_access.h"

namespace portico::tls {
namespace {

// Where a problem points: its certificate's entry, `ciphers` for the cipher list, else the
// listener or upstream.
struct Marks {
    std::vector<config::SourceMark> certificates;
    config::SourceMark ciphers;
    config::SourceMark fallback;
};

void report(const config::Config& config, const std::string& prefix, const detail::Problems& problems,
            const Marks& marks, bool skip_verify_warning, std::vector<config::ConfigError>& errors,
            std::vector<std::string>& warnings) {
    const std::vector<config::SourceMark>& certificate_marks = marks.certificates;
    for (const detail::Problem& p : problems.list()) {
        if (skip_verify_warning && p.warning && p.key == "tls.verify") continue;
        config::SourceMark mark = marks.fallback;
        if (p.key == "tls.ciphers" && marks.ciphers.line > 0) mark = marks.ciphers;
        if (p.certificate >= 0 && static_cast<std::size_t>(p.certificate) < certificate_marks.size() &&
            certificate_marks[static_cast<std::size_t>(p.certificate)].line > 0) {
            mark = certificate_marks[static_cast<std::size_t>(p.certificate)];
        }
        config::ConfigError error;
        error.file = config.file;
        error.line = mark.line;
        error.column = mark.column;
        error.key = p.key.empty() ? prefix : prefix + "." + p.key;
        error.message = p.message;
        if (p.warning) {
            warnings.push_back(error.toString());
        } else {
            errors.push_back(std::move(error));
        }
    }
}

}  // namespace

void checkTlsFiles(const config::Config& config, std::vector<config::ConfigError>& errors,
                   std::vector<std::string>& warnings) {
    const std::time_t now = std::time(nullptr);
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const config::Listener& listener = config.listeners[i];
        if (!listener.tls) continue;
        detail::Problems problems;
        detail::ServerContextAccess::build(*listener.tls, problems, nullptr, now);
        Marks marks{{}, listener.tls->ciphers_mark, listener.mark};
        for (const config::CertificateFiles& files : listener.tls->certificates)
            marks.certificates.push_back(files.mark);
        report(config, "listeners[" + std::to_string(i) + "]", problems, marks, false, errors, warnings);
    }
    for (const auto& [name, upstream] : config.upstreams) {
        if (!upstream.tls) continue;
        detail::Problems problems;
        detail::ClientContextAccess::build(*upstream.tls, problems);
        report(config, "upstreams." + name, problems, Marks{{}, {}, upstream.mark}, true, errors, warnings);
    }
}

}  // namespace portico::tls
