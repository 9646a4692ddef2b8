// SPDX-License-Identifier: Apache-2.0
#include "portico/tls/key_log.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace portico::tls;

namespace {

// A fresh folder under /tmp, removed with what it holds at the end of the test.
struct TempDir {
    TempDir() {
        char tmpl[] = "/tmp/portico-keylog-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    std::string path;
};

std::string readAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

unsigned modeOf(const std::string& path) {
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("key log is created with mode 0600 and gets whole lines appended", "[tls][keylog]") {
    TempDir dir;
    const std::string path = dir.path + "/keys.log";
    std::string error;
    std::shared_ptr<KeyLog> log = KeyLog::open(path, error);
    REQUIRE(log);
    CHECK(modeOf(path) == 0600);
    log->write("CLIENT_RANDOM aa bb");
    log->write("SERVER_TRAFFIC_SECRET_0 cc dd");
    CHECK(readAll(path) == "CLIENT_RANDOM aa bb\nSERVER_TRAFFIC_SECRET_0 cc dd\n");

    // Reopened (a reload): appended to, never truncated.
    std::shared_ptr<KeyLog> again = KeyLog::open(path, error);
    REQUIRE(again);
    again->write("EXPORTER_SECRET ee ff");
    CHECK(readAll(path) == "CLIENT_RANDOM aa bb\nSERVER_TRAFFIC_SECRET_0 cc dd\nEXPORTER_SECRET ee ff\n");
}

TEST_CASE("key log narrows an existing file readable by others to 0600", "[tls][keylog]") {
    TempDir dir;
    const std::string path = dir.path + "/keys.log";
    { std::ofstream(path) << "old\n"; }
    REQUIRE(chmod(path.c_str(), 0644) == 0);
    std::string error;
    REQUIRE(KeyLog::open(path, error));
    CHECK(modeOf(path) == 0600);
    CHECK(readAll(path) == "old\n");
}

TEST_CASE("key log that cannot be opened is an error naming the file", "[tls][keylog]") {
    TempDir dir;
    const std::string path = dir.path + "/missing/keys.log";
    std::string error;
    CHECK_FALSE(KeyLog::open(path, error));
    CHECK(error.find(path + ": cannot open: ") == 0);
}

TEST_CASE("key logs of one configuration share one writer per file", "[tls][keylog]") {
    TempDir dir;
    KeyLogs logs;
    std::string error;
    std::shared_ptr<KeyLog> a = logs.get(dir.path + "/a.log", error);
    std::shared_ptr<KeyLog> a2 = logs.get(dir.path + "/a.log", error);
    std::shared_ptr<KeyLog> b = logs.get(dir.path + "/b.log", error);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a == a2);
    CHECK(a != b);
    CHECK_FALSE(logs.get(dir.path + "/no/such/dir.log", error));
}
