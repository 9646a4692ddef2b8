// SPDX-License-Identifier: Apache-2.0
// The loader on valid files: every key of issues 2-5 decodes into the expected values, defaults
// apply where keys are absent, and relative paths resolve against the file's folder.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "portico/config/loader.h"

using namespace portico::config;
using namespace std::chrono_literals;

namespace {

std::string describe(const LoadResult& result) {
    std::string text;
    for (const ConfigError& error : result.errors) text += error.toString() + "\n";
    return text;
}

// The contract of issue 2, with the keys issues 3, 4 and 5 add.
const char* const kFullConfig = R"(workers: 4
shutdown_timeout: 15s
reload_drain_timeout: 30m
log:
  level: debug
  access: logs/access.log
  access_format: combined
limits:
  max_connections: 5000
  max_header_bytes: 16KiB
  max_body_bytes: 0
  client_header_timeout: 5s
  keepalive_timeout: 75s
listeners:
  - address: 127.0.0.1:8080
  - address: "[::1]:8081"
    redirect_https: 8443
  - address: "*:8443"
    tls:
      certificates:
        - {cert: tls/site.crt, key: tls/site.key}
        - {cert: /etc/ssl/other.crt, key: /etc/ssl/other.key}
      min_version: "1.3"
      ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256"
      alpn: [http/1.1]
      session_tickets: false
      client_ca: tls/clients.pem
upstreams:
  app:
    servers: [127.0.0.1:8000, 127.0.0.1:8001]
    balance: least_conn
    keepalive: 16
    connect_timeout: 500ms
    read_timeout: 1m
  chat:
    servers: ["[::1]:9000"]
    balance: ip_hash
  secure:
    servers: [127.0.0.1:9443]
    tls: {verify: true, ca: /etc/ssl/certs/ca-certificates.crt, sni: API.internal}
routes:
  - host: Example.COM
    path: /api/
    upstream: app
    strip_prefix: true
    set_headers: {X-Env: prod, X-Count: 3}
  - path: =/healthz
    handler: health
  - path: /ws/
    upstream: chat
    websocket:
      mode: frames
      max_message_bytes: 2MiB
      idle_timeout: 5m
      ping_interval: 20s
      origins: [https://Example.com, "http://localhost:8080"]
      subprotocols: [chat.v1, chat.v2]
  - path: /echo
    handler: echo
    websocket: {max_message_bytes: 64KiB, ping_interval: 0}
  - path: /live/
    handler: pubsub
    pubsub:
      client_publish: true
      publish_token: secret
      history: 50
      queue_bytes: 512KiB
  - host: "*.example.com"
    path: /secure/
    upstream: secure
  - path: /metrics
    handler: metrics
  - path: /status
    handler: status
  - path: /
    handler: static
    root: www
)";

}  // namespace

TEST_CASE("a full configuration decodes into the expected values", "[config][loader]") {
    LoadResult result = loadConfigString(kFullConfig, "/etc/portico/portico.yaml");
    INFO(describe(result));
    REQUIRE(result.ok());
    CHECK(result.warnings.empty());
    const Config& c = *result.config;

    CHECK(c.file == "/etc/portico/portico.yaml");
    CHECK(c.workers == 4);
    CHECK(c.shutdown_timeout == 15s);
    REQUIRE(c.reload_drain_timeout.has_value());
    CHECK(*c.reload_drain_timeout == 30min);

    CHECK(c.log.level == LogLevel::Debug);
    CHECK(c.log.access == "/etc/portico/logs/access.log");
    CHECK(c.log.access_format == AccessFormat::Combined);

    CHECK(c.limits.max_connections == 5000);
    CHECK(c.limits.max_header_bytes == 16384);
    CHECK(c.limits.max_body_bytes == 0);
    CHECK(c.limits.client_header_timeout == 5s);
    CHECK(c.limits.keepalive_timeout == 75s);

    REQUIRE(c.listeners.size() == 3);
    CHECK(c.listeners[0].address == HostPort{"127.0.0.1", 8080});
    CHECK_FALSE(c.listeners[0].redirect_https.has_value());
    CHECK_FALSE(c.listeners[0].tls.has_value());
    CHECK(c.listeners[0].mark.line == 15);
    CHECK(c.listeners[0].mark.column == 5);
    CHECK(c.listeners[1].address == HostPort{"::1", 8081});
    CHECK(c.listeners[1].redirect_https == std::optional<std::uint16_t>(8443));
    CHECK(c.listeners[2].address == HostPort{"", 8443});
    REQUIRE(c.listeners[2].tls.has_value());
    const ListenerTls& tls = *c.listeners[2].tls;
    REQUIRE(tls.certificates.size() == 2);
    CHECK(tls.certificates[0].cert == "/etc/portico/tls/site.crt");
    CHECK(tls.certificates[0].key == "/etc/portico/tls/site.key");
    CHECK(tls.certificates[1].cert == "/etc/ssl/other.crt");
    CHECK(tls.certificates[1].key == "/etc/ssl/other.key");
    CHECK(tls.min_version == TlsVersion::Tls13);
    CHECK(tls.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256");
    CHECK(tls.alpn == std::vector<std::string>{"http/1.1"});
    CHECK_FALSE(tls.session_tickets);
    CHECK(tls.client_ca == "/etc/portico/tls/clients.pem");

    REQUIRE(c.upstreams.size() == 3);
    const Upstream* app = c.findUpstream("app");
    REQUIRE(app != nullptr);
    CHECK(app->name == "app");
    CHECK(app->servers == std::vector<HostPort>{{"127.0.0.1", 8000}, {"127.0.0.1", 8001}});
    CHECK(app->balance == Balance::LeastConn);
    CHECK(app->keepalive == 16);
    CHECK(app->connect_timeout == 500ms);
    CHECK(app->read_timeout == 1min);
    CHECK_FALSE(app->tls.has_value());
    CHECK(app->mark.line == 29);
    CHECK(app->mark.column == 3);
    const Upstream* chat = c.findUpstream("chat");
    REQUIRE(chat != nullptr);
    CHECK(chat->servers == std::vector<HostPort>{{"::1", 9000}});
    CHECK(chat->balance == Balance::IpHash);
    CHECK(chat->keepalive == 32);  // defaults
    CHECK(chat->connect_timeout == 2s);
    CHECK(chat->send_timeout == 60s);  // nginx's proxy_send_timeout default
    CHECK(chat->read_timeout == 60s);
    const Upstream* secure = c.findUpstream("secure");
    REQUIRE(secure != nullptr);
    REQUIRE(secure->tls.has_value());
    CHECK(secure->tls->verify);
    CHECK(secure->tls->ca == "/etc/ssl/certs/ca-certificates.crt");
    CHECK(secure->tls->sni == "api.internal");
    CHECK(c.findUpstream("nope") == nullptr);

    REQUIRE(c.routes.size() == 9);
    const Route& api = c.routes[0];
    CHECK(api.host == "example.com");
    CHECK(api.path == "/api/");
    CHECK_FALSE(api.exact_path);
    CHECK(api.upstream == "app");
    CHECK(api.handler == HandlerKind::None);
    CHECK(api.strip_prefix);
    using Headers = std::vector<std::pair<std::string, std::string>>;
    CHECK(api.set_headers == Headers{{"X-Env", "prod"}, {"X-Count", "3"}});
    CHECK_FALSE(api.websocket_configured);
    CHECK(api.websocket.mode == WebSocketMode::Tunnel);
    CHECK(api.mark.line == 42);
    CHECK(api.mark.column == 5);

    CHECK(c.routes[1].path == "/healthz");
    CHECK(c.routes[1].exact_path);
    CHECK(c.routes[1].handler == HandlerKind::Health);
    CHECK(c.routes[1].upstream.empty());

    const Route& ws = c.routes[2];
    CHECK(ws.upstream == "chat");
    CHECK(ws.websocket_configured);
    CHECK(ws.websocket.mode == WebSocketMode::Frames);
    CHECK(ws.websocket.max_message_bytes == 2 * 1024 * 1024);
    CHECK(ws.websocket.idle_timeout == 5min);
    CHECK(ws.websocket.ping_interval == 20s);
    CHECK(ws.websocket.origins ==
          std::vector<std::string>{"https://example.com", "http://localhost:8080"});
    CHECK(ws.websocket.subprotocols == std::vector<std::string>{"chat.v1", "chat.v2"});

    const Route& echo = c.routes[3];
    CHECK(echo.handler == HandlerKind::Echo);
    CHECK(echo.websocket.max_message_bytes == 64 * 1024);
    CHECK(echo.websocket.ping_interval == 0ms);
    CHECK(echo.websocket.idle_timeout == 10min);  // default kept

    const Route& live = c.routes[4];
    CHECK(live.handler == HandlerKind::PubSub);
    CHECK(live.pubsub.client_publish);
    CHECK(live.pubsub.publish_token == "secret");
    CHECK(live.pubsub.history == 50);
    CHECK(live.pubsub.queue_bytes == 512 * 1024);

    CHECK(c.routes[5].host == "*.example.com");
    CHECK(c.routes[5].upstream == "secure");
    CHECK(c.routes[6].handler == HandlerKind::Metrics);
    CHECK(c.routes[7].handler == HandlerKind::Status);
    CHECK(c.routes[8].handler == HandlerKind::Static);
    CHECK(c.routes[8].root == "/etc/portico/www");
}

TEST_CASE("absent keys take the documented defaults", "[config][loader]") {
    LoadResult result = loadConfigString(R"(listeners:
  - address: "*:0"
routes:
  - path: /
    handler: health
)",
                                         "portico.yaml");
    INFO(describe(result));
    REQUIRE(result.ok());
    const Config& c = *result.config;
    CHECK(c.workers == 0);
    CHECK(c.shutdown_timeout == 10s);
    CHECK_FALSE(c.reload_drain_timeout.has_value());
    CHECK(c.log.level == LogLevel::Info);
    CHECK(c.log.access == "stdout");
    CHECK(c.log.access_format == AccessFormat::Json);
    CHECK(c.limits.max_connections == 10000);
    CHECK(c.limits.max_header_bytes == 16 * 1024);
    CHECK(c.limits.max_body_bytes == 10 * 1024 * 1024);
    CHECK(c.limits.client_header_timeout == 10s);
    CHECK(c.limits.client_body_timeout == 60s);
    CHECK(c.limits.keepalive_timeout == 75s);
    CHECK(c.limits.client_send_timeout == 60s);
    CHECK(c.upstreams.empty());
    REQUIRE(c.routes.size() == 1);
    CHECK(c.routes[0].host.empty());
    CHECK(c.routes[0].websocket.mode == WebSocketMode::Tunnel);
    CHECK(c.routes[0].websocket.max_message_bytes == 1024 * 1024);
    CHECK(c.routes[0].pubsub.history == 100);
}

TEST_CASE("workers: auto is 0, a positive integer is kept", "[config][loader]") {
    auto workers = [](const std::string& value) {
        LoadResult result = loadConfigString("workers: " + value +
                                                 "\nlisteners: [{address: 127.0.0.1:0}]\n"
                                                 "routes: [{handler: health}]\n",
                                             "portico.yaml");
        INFO(describe(result));
        REQUIRE(result.ok());
        return result.config->workers;
    };
    CHECK(workers("auto") == 0);
    CHECK(workers("1") == 1);
    CHECK(workers("16") == 16);
    CHECK(workers("1024") == 1024);
}

TEST_CASE("reload_drain_timeout is off by default, off or a duration", "[config][loader]") {
    auto drain = [](const std::string& line) {
        LoadResult result = loadConfigString(
            line + "listeners: [{address: 127.0.0.1:0}]\nroutes: [{handler: health}]\n",
            "portico.yaml");
        INFO(describe(result));
        REQUIRE(result.ok());
        return result.config->reload_drain_timeout;
    };
    CHECK_FALSE(drain("").has_value());
    CHECK_FALSE(drain("reload_drain_timeout: off\n").has_value());
    CHECK(drain("reload_drain_timeout: 0\n") == std::optional<Duration>(0ms));
    CHECK(drain("reload_drain_timeout: 90s\n") == std::optional<Duration>(90s));
}

TEST_CASE("send_timeout takes a duration, independent of read_timeout", "[config][loader]") {
    auto timeouts = [](const std::string& keys) {
        LoadResult result = loadConfigString("listeners: [{address: 127.0.0.1:0}]\n"
                                             "upstreams: {u: {servers: [127.0.0.1:1]" + keys + "}}\n"
                                             "routes: [{upstream: u}]\n",
                                             "portico.yaml");
        INFO(describe(result));
        REQUIRE(result.ok());
        const Upstream* u = result.config->findUpstream("u");
        REQUIRE(u != nullptr);
        return std::pair{u->send_timeout, u->read_timeout};
    };
    CHECK(timeouts("") == std::pair<Duration, Duration>{60s, 60s});
    CHECK(timeouts(", send_timeout: 250ms") == std::pair<Duration, Duration>{250ms, 60s});
    CHECK(timeouts(", send_timeout: 2m, read_timeout: 7s") == std::pair<Duration, Duration>{2min, 7s});
    CHECK(timeouts(", read_timeout: 1h") == std::pair<Duration, Duration>{60s, 1h});
}

TEST_CASE("relative paths resolve against the configuration file's folder", "[config][loader]") {
    const std::string yaml = R"(log: {access: ../log/access.log}
listeners:
  - address: "*:8443"
    tls:
      certificates: [{cert: tls/a.crt, key: ./tls/a.key}]
      client_ca: /abs/ca.pem
upstreams:
  u: {servers: [127.0.0.1:1], tls: {ca: certs/ca.pem}}
routes:
  - {path: /a/, upstream: u}
  - {path: /, handler: static, root: www/./site/}
)";
    SECTION("absolute file") {
        LoadResult result = loadConfigString(yaml, "/srv/portico/conf/portico.yaml");
        INFO(describe(result));
        REQUIRE(result.ok());
        const Config& c = *result.config;
        CHECK(c.log.access == "/srv/portico/log/access.log");
        CHECK(c.listeners[0].tls->certificates[0].cert == "/srv/portico/conf/tls/a.crt");
        CHECK(c.listeners[0].tls->certificates[0].key == "/srv/portico/conf/tls/a.key");
        CHECK(c.listeners[0].tls->client_ca == "/abs/ca.pem");
        CHECK(c.findUpstream("u")->tls->ca == "/srv/portico/conf/certs/ca.pem");
        CHECK(c.routes[1].root == "/srv/portico/conf/www/site/");
    }
    SECTION("relative file: against the working directory") {
        LoadResult result = loadConfigString(yaml, "conf/portico.yaml");
        INFO(describe(result));
        REQUIRE(result.ok());
        std::string cwd = std::filesystem::current_path().string();
        CHECK(result.config->routes[1].root == cwd + "/conf/www/site/");
        CHECK(result.config->log.access == cwd + "/log/access.log");
        CHECK(result.config->file == "conf/portico.yaml");
    }
    SECTION("bare file name: the working directory") {
        LoadResult result = loadConfigString(yaml, "portico.yaml");
        REQUIRE(result.ok());
        CHECK(result.config->routes[1].root ==
              std::filesystem::current_path().string() + "/www/site/");
    }
    SECTION("stdout and off are not paths") {
        for (const char* access : {"stdout", "off"}) {
            LoadResult result = loadConfigString(std::string("log: {access: ") + access +
                                                     "}\nlisteners: [{address: 127.0.0.1:0}]\n"
                                                     "routes: [{handler: health}]\n",
                                                 "/etc/portico/portico.yaml");
            REQUIRE(result.ok());
            CHECK(result.config->log.access == access);
        }
    }
}

TEST_CASE("loadConfigFile reads the file and resolves paths next to it", "[config][loader]") {
    std::filesystem::path folder = std::filesystem::temp_directory_path() /
                                   ("portico-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(folder);
    std::filesystem::path file = folder / "portico.yaml";
    {
        std::ofstream out(file);
        out << "listeners: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /, handler: static, "
               "root: www}\n";
    }
    LoadResult result = loadConfigFile(file.string());
    INFO(describe(result));
    REQUIRE(result.ok());
    CHECK(result.config->file == file.string());
    CHECK(result.config->routes[0].root == (folder / "www").string());

    {
        std::ofstream out(file);
        out << "listeners: [{address: 127.0.0.1:0}]\nroutes: [{handler: nope}]\n";
    }
    result = loadConfigFile(file.string());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].toString() ==
          file.string() +
              ":2:20: routes[0].handler: unknown handler \"nope\" (expected health, "
              "static, echo, pubsub, metrics, status, dashboard or publish)");
    CHECK(result.config == nullptr);
    std::filesystem::remove_all(folder);
}
