// SPDX-License-Identifier: Apache-2.0
#include "portico/handlers/http_handlers.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include <event2/buffer.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portico/core/handles.h"
#include "portico/http/http1_response_writer.h"

using namespace portico;

namespace {

// A temporary tree: <dir>/www is the static root, <dir>/secret.txt lies outside it.
class TempSite {
public:
    TempSite() {
        char pattern[] = "/tmp/portico-static-XXXXXX";
        const char* made = mkdtemp(pattern);
        REQUIRE(made != nullptr);
        dir_ = made;
        root_ = dir_ + "/www";
        mkdir(root_.c_str(), 0755);
        mkdir((root_ + "/sub").c_str(), 0755);
        mkdir((root_ + "/empty").c_str(), 0755);
        write("secret.txt", "top secret\n", dir_);
        write("index.html", "<h1>home</h1>\n");
        write("style.css", "body{}\n");
        write("app.js", "let a;\n");
        write("a b.txt", "spaced\n");
        write("sub/index.html", "<h1>sub</h1>\n");
        write("sub/data.json", "{}\n");
        write("zero.txt", "");
        REQUIRE(symlink("../secret.txt", (root_ + "/link.txt").c_str()) == 0);
    }
    ~TempSite() {
        // The tree is small and known: remove what was made.
        for (const char* f : {"index.html", "style.css", "app.js", "a b.txt", "sub/index.html", "sub/data.json",
                              "zero.txt", "link.txt"})
            std::remove((root_ + "/" + f).c_str());
        rmdir((root_ + "/sub").c_str());
        rmdir((root_ + "/empty").c_str());
        rmdir(root_.c_str());
        std::remove((dir_ + "/secret.txt").c_str());
        rmdir(dir_.c_str());
    }
    TempSite(const TempSite&) = delete;
    TempSite& operator=(const TempSite&) = delete;

    const std::string& root() const { return root_; }

private:
    void write(const std::string& name, const std::string& content, const std::string& base = "") const {
        std::ofstream out((base.empty() ? root_ : base) + "/" + name, std::ios::binary);
        out << content;
    }
    std::string dir_;
    std::string root_;
};

struct Served {
    int status = 0;
    std::uint64_t bytes = 0;
    std::string head;
    std::string body;
    std::string text;  // everything written

    // The value of header `name` in the head ("" when absent).
    std::string header(std::string_view name) const {
        std::string needle = "\r\n" + std::string(name) + ": ";
        auto at = head.find(needle);
        if (at == std::string::npos) return "";
        at += needle.size();
        return head.substr(at, head.find("\r\n", at) - at);
    }
};

config::Route staticRoute(const std::string& root, std::string path = "/") {
    config::Route r;
    r.handler = config::HandlerKind::Static;
    r.path = std::move(path);
    r.root = root;
    return r;
}

Served serve(const config::Route& route, std::string method, std::string target) {
    http::RequestHead request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.headers = {{"Host", "h"}};
    core::EvbufferPtr out(evbuffer_new());
    http::Http1ResponseWriter writer(out.get());
    handlers::serveStatic(writer, route, request);
    Served s;
    s.status = writer.status();
    s.bytes = writer.bytes();
    s.text.resize(evbuffer_get_length(out.get()));
    if (!s.text.empty()) evbuffer_remove(out.get(), s.text.data(), s.text.size());
    auto end = s.text.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    s.head = s.text.substr(0, end + 2);
    s.body = s.text.substr(end + 4);
    return s;
}

}  // namespace

TEST_CASE("static handler serves index.html for \"/\"", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/");
    CHECK(s.status == 200);
    CHECK(s.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(s.body == "<h1>home</h1>\n");
    CHECK(s.header("Content-Type") == "text/html; charset=utf-8");
    CHECK(s.header("Content-Length") == "14");
    CHECK(s.bytes == s.text.size());
}

TEST_CASE("static handler serves a file with its media type, query ignored", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/style.css?v=3");
    CHECK(s.status == 200);
    CHECK(s.body == "body{}\n");
    CHECK(s.header("Content-Type") == "text/css; charset=utf-8");
}

TEST_CASE("static handler serves a subdirectory's index.html", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/sub/");
    CHECK(s.status == 200);
    CHECK(s.body == "<h1>sub</h1>\n");
}

TEST_CASE("static handler decodes percent-escapes in the path", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/a%20b.txt");
    CHECK(s.status == 200);
    CHECK(s.body == "spaced\n");
    CHECK(s.header("Content-Type") == "text/plain; charset=utf-8");
}

TEST_CASE("static handler serves an empty file with Content-Length 0", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/zero.txt");
    CHECK(s.status == 200);
    CHECK(s.header("Content-Length") == "0");
    CHECK(s.body.empty());
}

TEST_CASE("static handler removes the route prefix", "[handlers][static]") {
    TempSite site;
    const config::Route route = staticRoute(site.root(), "/static/");
    const Served js = serve(route, "GET", "/static/app.js");
    CHECK(js.status == 200);
    CHECK(js.body == "let a;\n");
    CHECK(js.header("Content-Type") == "text/javascript; charset=utf-8");
    const Served json = serve(route, "GET", "/static/sub/data.json");
    CHECK(json.status == 200);
    CHECK(json.header("Content-Type") == "application/json");
}

TEST_CASE("static handler answers HEAD with the head only", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "HEAD", "/index.html");
    CHECK(s.status == 200);
    CHECK(s.header("Content-Length") == "14");
    CHECK(s.body.empty());
    CHECK(s.bytes == s.text.size());
}

TEST_CASE("static handler answers HEAD with the head only also for 404 and 301", "[handlers][static]") {
    // A body after a HEAD response is read by a keep-alive client as the next response (found
    // by fuzz_pubsub_publish for the pubsub handler's 404; the same held here).
    TempSite site;
    for (const char* target : {"/missing.html", "/sub", "/../x"}) {
        INFO(target);
        const Served s = serve(staticRoute(site.root()), "HEAD", target);
        CHECK((s.status == 404 || s.status == 301));
        CHECK(s.body.empty());
        CHECK(s.header("Content-Length") != "0");  // the length a GET would get
        CHECK(s.bytes == s.text.size());
    }
}

TEST_CASE("static handler answers 404 for a missing file", "[handlers][static]") {
    TempSite site;
    for (const char* target : {"/missing.html", "/sub/missing", "/nodir/file.txt"}) {
        INFO(target);
        const Served s = serve(staticRoute(site.root()), "GET", target);
        CHECK(s.status == 404);
        CHECK(s.head.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    }
}

TEST_CASE("static handler lists no directory without index.html", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/empty/");
    CHECK(s.status == 404);
}

TEST_CASE("static handler refuses path traversal, plain or percent-encoded", "[handlers][static]") {
    TempSite site;
    const char* kTargets[] = {
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/..%2F..%2Fsecret.txt",
        "/..",
        "/%2e%2e",
        "/..%5csecret.txt",
        "/index.html%00.txt",
        "/%",
        "/%2",
        "/%zz",
    };
    for (const char* target : kTargets) {
        INFO(target);
        const Served s = serve(staticRoute(site.root()), "GET", target);
        CHECK(s.status == 404);
        CHECK(s.text.find("top secret") == std::string::npos);
    }
    const config::Route prefixed = staticRoute(site.root(), "/static/");
    for (const char* target : {"/static/../secret.txt", "/static/%2e%2e/secret.txt"}) {
        INFO(target);
        const Served s = serve(prefixed, "GET", target);
        CHECK(s.status == 404);
        CHECK(s.text.find("top secret") == std::string::npos);
    }
}

TEST_CASE("static handler does not follow a symlink out of its root", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/link.txt");
    CHECK(s.status != 200);
    CHECK(s.text.find("top secret") == std::string::npos);
}

TEST_CASE("static handler redirects a directory without its slash (301)", "[handlers][static]") {
    TempSite site;
    const Served s = serve(staticRoute(site.root()), "GET", "/sub");
    CHECK(s.status == 301);
    CHECK(s.head.rfind("HTTP/1.1 301 Moved Permanently\r\n", 0) == 0);
    CHECK(s.header("Location") == "/sub/");
    const Served prefixed = serve(staticRoute(site.root(), "/static/"), "GET", "/static/sub");
    CHECK(prefixed.status == 301);
    CHECK(prefixed.header("Location") == "/static/sub/");
}

TEST_CASE("static handler answers 405 with Allow for other methods", "[handlers][static]") {
    TempSite site;
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
        INFO(method);
        const Served s = serve(staticRoute(site.root()), method, "/index.html");
        CHECK(s.status == 405);
        CHECK(s.head.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
        CHECK(s.header("Allow") == "GET, HEAD");
        CHECK(s.body.find("<h1>home") == std::string::npos);
    }
}

TEST_CASE("mediaTypeFor maps extensions case-insensitively", "[handlers][static]") {
    struct Case {
        std::string_view path;
        std::string_view type;
    };
    const Case kCases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"/a/b/page.HTM", "text/html; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"module.mjs", "text/javascript; charset=utf-8"},
        {"site.CSS", "text/css; charset=utf-8"},
        {"data.json", "application/json"},
        {"notes.txt", "text/plain; charset=utf-8"},
        {"logo.svg", "image/svg+xml"},
        {"photo.PNG", "image/png"},
        {"photo.jpg", "image/jpeg"},
        {"photo.jpeg", "image/jpeg"},
        {"anim.gif", "image/gif"},
        {"favicon.ico", "image/x-icon"},
        {"code.wasm", "application/wasm"},
        {"pic.webp", "image/webp"},
        {"font.woff2", "font/woff2"},
        {"feed.xml", "application/xml"},
        {"README", "application/octet-stream"},
        {"archive.tar.gz", "application/octet-stream"},
        {"dir.d/file", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
        {"", "application/octet-stream"},
    };
    for (const auto& c : kCases) {
        INFO(c.path);
        CHECK(std::string_view(handlers::mediaTypeFor(c.path)) == c.type);
    }
}

TEST_CASE("health handler answers 200 ok, head only for HEAD", "[handlers]") {
    http::RequestHead request;
    request.method = "GET";
    request.target = "/healthz";
    core::EvbufferPtr out(evbuffer_new());
    http::Http1ResponseWriter writer(out.get());
    handlers::serveHealth(writer, request);
    std::string text(evbuffer_get_length(out.get()), '\0');
    evbuffer_remove(out.get(), text.data(), text.size());
    CHECK(writer.status() == 200);
    CHECK(writer.bytes() == text.size());
    CHECK(text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(text.size() > 3);
    CHECK(text.substr(text.size() - 7) == "\r\n\r\nok\n");

    request.method = "HEAD";
    core::EvbufferPtr head_out(evbuffer_new());
    http::Http1ResponseWriter head_writer(head_out.get());
    handlers::serveHealth(head_writer, request);
    std::string head_text(evbuffer_get_length(head_out.get()), '\0');
    evbuffer_remove(head_out.get(), head_text.data(), head_text.size());
    CHECK(head_writer.status() == 200);
    CHECK(head_text.substr(head_text.size() - 4) == "\r\n\r\n");
    CHECK(head_text.find("Content-Length: 3\r\n") != std::string::npos);
}
