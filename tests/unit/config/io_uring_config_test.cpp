// SPDX-License-Identifier: Apache-2.0
// The top-level `io_uring` key: off by default, off | auto | on, anything else an error with
// its place.
#include <catch2/catch.hpp>

#include "portico/config/loader.h"

using namespace portico::config;

namespace {

LoadResult load(const std::string& line) {
    return loadConfigString(line + "listeners: [{address: 127.0.0.1:0}]\nroutes: [{handler: health}]\n",
                            "portico.yaml");
}

}  // namespace

TEST_CASE("io_uring is off by default, off, auto or on", "[config][loader][uring]") {
    auto mode = [](const std::string& line) {
        LoadResult result = load(line);
        REQUIRE(result.ok());
        return result.config->io_uring;
    };
    CHECK(mode("") == IoUring::Off);
    CHECK(mode("io_uring: off\n") == IoUring::Off);
    CHECK(mode("io_uring: auto\n") == IoUring::Auto);
    CHECK(mode("io_uring: on\n") == IoUring::On);
    CHECK(std::string(toString(IoUring::Auto)) == "auto");
}

TEST_CASE("io_uring rejects other values with file:line:col", "[config][loader][uring]") {
    for (const char* bad : {"io_uring: yes\n", "io_uring: [on]\n", "io_uring: 1\n"}) {
        LoadResult result = load(bad);
        INFO(bad);
        REQUIRE_FALSE(result.ok());
        REQUIRE(result.errors.size() == 1);
        const std::string line = result.errors[0].toString();
        CHECK(line.rfind("portico.yaml:1:11: io_uring: ", 0) == 0);
        CHECK(line.find("off, auto or on") != std::string::npos);
    }
}
