// SPDX-License-Identifier: Apache-2.0
// The main() of the replay executables (fuzz_<what>_replay): runs every file named on the command
// line, or found in a folder named there, through the target's LLVMFuzzerTestOneInput, in name
// order, once. This is how the seed corpus and the regression inputs run in every ctest run
// without clang or libFuzzer.
//
//   fuzz_http_request_replay tests/fuzz/corpus/http_request tests/fuzz/regressions/http_request
//
// A folder that does not exist counts as empty (a target may have no regressions yet), but at
// least one input must be found in all: a wrong path must not pass silently. A crash or a failed
// FUZZ_CHECK ends the process; the input being replayed is named on stderr first.

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a target, as with libFuzzer.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
// Called by ASan/UBSan before they end the process on an error (when a sanitizer is linked).
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace {

std::string current_input;  // the file being replayed, for the crash note

void noteCrash() {
    // Only async-signal-safe calls: write(2) of a string built before the crash.
    static constexpr char kPrefix[] = "fuzz replay: crashed on ";
    ssize_t ignored = write(STDERR_FILENO, kPrefix, sizeof kPrefix - 1);
    ignored = write(STDERR_FILENO, current_input.data(), current_input.size());
    ignored = write(STDERR_FILENO, "\n", 1);
    static_cast<void>(ignored);
}

void onFatalSignal(int signal) {
    noteCrash();
    std::signal(signal, SIG_DFL);
    std::raise(signal);
}

bool replay(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "fuzz replay: cannot read %s\n", file.c_str());
        return false;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    current_input = file.string();
    // A copy of exactly `size` bytes, as libFuzzer gives: reading past it is an ASan error.
    std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(noteCrash);
    for (int signal : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE}) std::signal(signal, onFatalSignal);

    std::size_t replayed = 0;
    bool ok = true;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path path(argv[i]);
        std::error_code error;
        if (std::filesystem::is_directory(path, error)) {
            std::vector<std::filesystem::path> files;
            for (const auto& entry : std::filesystem::directory_iterator(path))
                if (entry.is_regular_file() && entry.path().filename().string().front() != '.')
                    files.push_back(entry.path());
            std::sort(files.begin(), files.end());
            for (const auto& file : files) {
                ok = replay(file) && ok;
                ++replayed;
            }
            std::printf("%s: %zu inputs\n", path.c_str(), files.size());
        } else if (std::filesystem::exists(path, error)) {
            ok = replay(path) && ok;
            replayed += 1;
        } else {
            std::printf("%s: absent, nothing to replay\n", path.c_str());
        }
    }
    if (replayed == 0) {
        std::fprintf(stderr, "fuzz replay: no input found in %d paths\n", argc - 1);
        return 1;
    }
    std::printf("replayed %zu inputs without a crash\n", replayed);
    return ok ? 0 : 1;
}
