// SPDX-License-Identifier: Apache-2.0
// portico: argv, configuration, and the server. The only file the tests do not link.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "portico/config/loader.h"
#include "portico/config/schema.h"
#include "portico/core/log.h"
#include "portico/net/fd_limit.h"
#include "portico/net/server.h"
#include "portico/net/snapshot.h"
#include "portico/observe/access_log.h"
#include "portico/tls/file_check.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/portico/portico.yaml";

void printUsage(FILE* out) {
    std::fprintf(out,
                 "Usage: portico [-c FILE] [-t]\n"
                 "  -c, --config FILE  configuration file (default %s)\n"
                 "  -t, --test         check the configuration and exit\n"
                 "  --schema           print the JSON Schema of the configuration file and exit\n"
                 "  -v, --version      print the version and exit\n"
                 "  -h, --help         print this help and exit\n"
                 "Signals: TERM/INT stop gracefully, HUP reloads the configuration, USR1 reopens the access log.\n",
                 kDefaultConfig);
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path = kDefaultConfig;
    bool test_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-c" || arg == "--config") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "portico: %s needs a file\n", arg.c_str());
                return 2;
            }
            config_path = argv[++i];
        } else if (arg == "-t" || arg == "--test") {
            test_only = true;
        } else if (arg == "--schema") {
            std::fputs(portico::config::configSchemaJson().c_str(), stdout);
            return std::fflush(stdout) == 0 ? 0 : 1;
        } else if (arg == "--version" || arg == "-v") {
            std::printf("portico %s\n", PORTICO_VERSION);
            return 0;
        } else if (arg == "-h" || arg == "--help") {
            printUsage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "portico: unknown argument %s\n", arg.c_str());
            printUsage(stderr);
            return 2;
        }
    }

    portico::config::LoadResult loaded = portico::config::loadConfigFile(config_path);
    // The files the configuration names (certificates, keys, CAs): readable, matching, not
    // passphrase-protected, not expired.
    if (loaded.ok()) portico::tls::checkTlsFiles(*loaded.config, loaded.errors, loaded.warnings);
    // ... and the access log file: can it be opened for appending (or created)?
    if (loaded.config) {  // also after TLS errors: every problem in one run
        const portico::config::LogSettings& log = loaded.config->log;
        if (std::string problem = portico::observe::AccessSink::check(log); !problem.empty())
            loaded.errors.push_back({loaded.config->file, log.access_mark.line, log.access_mark.column, "log.access",
                                     std::move(problem)});
    }
    for (const auto& warning : loaded.warnings) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    if (!loaded.ok()) {
        for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.toString().c_str());
        std::fprintf(stderr, "configuration %s: %zu error%s\n", config_path.c_str(), loaded.errors.size(),
                     loaded.errors.size() == 1 ? "" : "s");
        return 1;
    }
    portico::net::TlsContexts tls;
    std::vector<std::string> tls_errors, tls_warnings;
    bool tls_ok = portico::net::buildTlsContexts(*loaded.config, nullptr, tls, tls_errors, tls_warnings);
    if (!tls_ok) {
        for (const auto& error : tls_errors) std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    if (test_only) {
        std::printf("configuration OK\n");
        return 0;
    }

    // Start-up only: `-t` may run in a shell whose limit is not the service's.
    const unsigned workers = portico::net::effectiveWorkerCount(loaded.config->workers);
    if (auto warning = portico::net::fdLimitWarning(*loaded.config, workers, portico::net::raiseFdLimit()))
        LOG_WARN("%s", warning->c_str());

    std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error return, not a signal
    try {
        portico::net::Server server(config_path, loaded.config, std::move(tls));
        return server.run();
    } catch (const std::exception& e) {  // start-up only: an event loop that could not be made
        LOG_ERROR("%s", e.what());
        return 1;
    }
}
