// SPDX-License-Identifier: Apache-2.0
#include "portico/observe/access_log.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include <event2/event.h>
#include <unistd.h>

#include "portico/net/event_loop.h"

using namespace portico;
using namespace std::chrono_literals;

namespace {

// A strict reader for the flat JSON objects the access log writes: string and number members
// only. Strings are decoded (\" \\ \/ \b \f \n \r \t \uXXXX); raw control bytes are refused,
// as RFC 8259 7 requires them escaped.
class FlatJson {
public:
    explicit FlatJson(std::string_view text) : s_(text) {}

    // True when the whole text is one object; members land in strings/numbers.
    bool parse() {
        skipSpace();
        if (!eat('{')) return false;
        skipSpace();
        if (eat('}')) return atEnd();
        for (;;) {
            skipSpace();
            std::string key;
            if (!readString(key) || members_.count(key)) return false;
            skipSpace();
            if (!eat(':')) return false;
            skipSpace();
            members_[key] = true;
            if (peek() == '"') {
                std::string value;
                if (!readString(value)) return false;
                strings[key] = value;
            } else {
                std::string number;
                if (!readNumber(number)) return false;
                numbers[key] = number;
            }
            skipSpace();
            if (eat(',')) continue;
            if (!eat('}')) return false;
            return atEnd();
        }
    }

    std::map<std::string, std::string> strings;
    std::map<std::string, std::string> numbers;  // as written

private:
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    bool eat(char c) {
        if (peek() != c || i_ >= s_.size()) return false;
        ++i_;
        return true;
    }
    void skipSpace() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    bool atEnd() {
        skipSpace();
        return i_ == s_.size();
    }
    static int hex(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    bool readString(std::string& out) {
        if (!eat('"')) return false;
        while (i_ < s_.size()) {
            const char c = s_[i_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false;
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (i_ >= s_.size()) return false;
            const char e = s_[i_++];
            switch (e) {
                case '"': case '\\': case '/': out.push_back(e); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    if (i_ + 4 > s_.size()) return false;
                    int code = 0;
                    for (int k = 0; k < 4; ++k) {
                        int h = hex(s_[i_++]);
                        if (h < 0) return false;
                        code = code * 16 + h;
                    }
                    if (code >= 0x80) return false;  // only ASCII escapes are expected here
                    out.push_back(static_cast<char>(code));
                    break;
                }
                default: return false;
            }
        }
        return false;
    }
    bool readNumber(std::string& out) {
        const std::size_t start = i_;
        if (peek() == '-') ++i_;
        while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' ||
                                  s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
            ++i_;
        out = std::string(s_.substr(start, i_ - start));
        if (out.empty() || out == "-") return false;
        char* end = nullptr;
        std::strtod(out.c_str(), &end);
        return end == out.c_str() + out.size();
    }

    std::string_view s_;
    std::size_t i_ = 0;
    std::map<std::string, bool> members_;
};

observe::AccessRecord sampleRecord() {
    observe::AccessRecord r;
    r.time = std::chrono::system_clock::time_point{} + 1700000000s + 123ms;  // 2023-11-14T22:13:20.123Z
    r.client = "192.0.2.7";
    r.method = "GET";
    r.path = "/api/items?id=3";
    r.status = 200;
    r.bytes_in = 512;
    r.bytes_out = 2048;
    r.upstream = "127.0.0.1:8000";
    r.duration_ms = 12.5;
    return r;
}

std::string format(const observe::AccessRecord& r, config::AccessFormat f) {
    std::string out;
    observe::formatAccessRecord(out, r, f);
    return out;
}

}  // namespace

TEST_CASE("access log JSON line holds every field", "[observe][access]") {
    const std::string line = format(sampleRecord(), config::AccessFormat::Json);
    REQUIRE(!line.empty());
    CHECK(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);  // one line per request
    FlatJson json(std::string_view(line).substr(0, line.size() - 1));
    REQUIRE(json.parse());
    CHECK(json.strings["time"] == "2023-11-14T22:13:20.123Z");
    CHECK(json.strings["client"] == "192.0.2.7");
    CHECK(json.strings["method"] == "GET");
    CHECK(json.strings["path"] == "/api/items?id=3");
    CHECK(json.strings["protocol"] == "HTTP/1.1");
    CHECK(json.numbers["status"] == "200");
    CHECK(json.numbers["bytes_in"] == "512");
    CHECK(json.numbers["bytes_out"] == "2048");
    CHECK(json.strings["upstream"] == "127.0.0.1:8000");
    REQUIRE(json.numbers.count("duration_ms") == 1);
    CHECK(std::strtod(json.numbers["duration_ms"].c_str(), nullptr) == Approx(12.5));
    CHECK(json.strings.size() + json.numbers.size() == 10);
}

TEST_CASE("access log names the protocol: HTTP/2.0 for a stream, in both formats", "[observe][access]") {
    observe::AccessRecord record = sampleRecord();
    record.protocol = "HTTP/2.0";
    const std::string json = format(record, config::AccessFormat::Json);
    CHECK(json.find("\"protocol\":\"HTTP/2.0\"") != std::string::npos);
    const std::string combined = format(record, config::AccessFormat::Combined);
    CHECK(combined.find(" HTTP/2.0\" 200 ") != std::string::npos);
}

TEST_CASE("access log JSON escapes quotes, backslashes and control bytes", "[observe][access]") {
    struct Case {
        const char* what;
        std::string path;
    };
    const Case kCases[] = {
        {"a quote", "/a\"b"},
        {"a backslash", "/a\\b"},
        {"a forged field", "/x\",\"status\":999,\"y\":\""},
        {"a newline forging a second line", "/x\n{\"time\":\"forged\"}"},
        {"CR, tab and NUL", std::string("/x\r\t\0y", 6)},
        {"every C0 control byte and DEL", [] {
             std::string s = "/";
             for (int c = 1; c < 0x20; ++c) s.push_back(static_cast<char>(c));
             s.push_back('\x7f');
             return s;
         }()},
        {"UTF-8 passes through", "/caf\xc3\xa9"},
    };
    for (const auto& c : kCases) {
        INFO(c.what);
        observe::AccessRecord r = sampleRecord();
        r.path = c.path;
        r.method = "GE\"T";
        r.client = "::1";
        r.upstream = "-";
        const std::string line = format(r, config::AccessFormat::Json);
        CHECK(line.find('\n') == line.size() - 1);
        CHECK(line.find('\r') == std::string::npos);
        FlatJson json(std::string_view(line).substr(0, line.size() - 1));
        REQUIRE(json.parse());
        CHECK(json.strings["path"] == c.path);  // decodes back to exactly what was received
        CHECK(json.strings["method"] == "GE\"T");
        CHECK(json.numbers["status"] == "200");
        CHECK(json.strings["upstream"] == "-");
    }
}

TEST_CASE("access log combined format quotes its fields safely", "[observe][access]") {
    observe::AccessRecord r = sampleRecord();
    r.path = "/a\"b";
    r.referer = "http://ref.example/\"x";
    r.user_agent = "agent\n2";
    const std::string line = format(r, config::AccessFormat::Combined);
    CHECK(line.find('\n') == line.size() - 1);
    CHECK(line.rfind("192.0.2.7 - - [", 0) == 0);
    CHECK(line.find("\"GET /a'b HTTP/1.1\" 200 2048 ") != std::string::npos);
    CHECK(line.find("\"http://ref.example/\\x22x\"") != std::string::npos);
    CHECK(line.find("\"agent\\x0A2\"") != std::string::npos);

    observe::AccessRecord bare = sampleRecord();
    const std::string dash = format(bare, config::AccessFormat::Combined);
    CHECK(dash.find("\"-\" \"-\"\n") != std::string::npos);
}

TEST_CASE("access log batches lines and writes them once the loop runs", "[observe][access]") {
    char pattern[] = "/tmp/portico-access-XXXXXX";
    const int fd = mkstemp(pattern);
    REQUIRE(fd >= 0);
    close(fd);
    const std::string path = pattern;
    {
        config::LogSettings settings;
        settings.access = path;
        std::string error;
        auto sink = observe::AccessSink::open(settings, error);
        REQUIRE(sink);
        CHECK(error.empty());
        net::EventLoop loop;
        observe::AccessLog log(loop, sink);
        CHECK(log.enabled());
        log.write(sampleRecord());
        log.write(sampleRecord());
        std::ifstream before(path);
        std::stringstream early;
        early << before.rdbuf();
        CHECK(early.str().empty());  // nothing written inside the callback that logged
        event_base_loop(loop.base(), EVLOOP_NONBLOCK);
        std::ifstream after(path);
        std::stringstream written;
        written << after.rdbuf();
        CHECK(written.str() == format(sampleRecord(), config::AccessFormat::Json) +
                                   format(sampleRecord(), config::AccessFormat::Json));
    }
    std::remove(path.c_str());
}

TEST_CASE("access log \"off\" writes nothing", "[observe][access]") {
    config::LogSettings settings;
    settings.access = "off";
    std::string error;
    auto sink = observe::AccessSink::open(settings, error);
    REQUIRE(sink);
    CHECK_FALSE(sink->enabled());
    net::EventLoop loop;
    observe::AccessLog log(loop, sink);
    CHECK_FALSE(log.enabled());
    log.write(sampleRecord());  // must not crash or write
}

TEST_CASE("access log reports a file it cannot open", "[observe][access]") {
    config::LogSettings settings;
    settings.access = "/nonexistent-dir-portico/access.log";
    std::string error;
    CHECK(observe::AccessSink::open(settings, error) == nullptr);
    CHECK(error.find("/nonexistent-dir-portico/access.log") != std::string::npos);
}
