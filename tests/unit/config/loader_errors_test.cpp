// SPDX-License-Identifier: Apache-2.0
// The loader on invalid files: every error class names file:line:column (1-based) and the key
// path, one mistake gives one error, and all errors are reported, top to bottom.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/config/loader.h"

using namespace portico::config;

namespace {

using Lines = std::vector<std::string>;

Lines errorsOf(const std::string& yaml, const std::string& file = "portico.yaml") {
    LoadResult result = loadConfigString(yaml, file);
    Lines lines;
    for (const ConfigError& error : result.errors) lines.push_back(error.toString());
    if (!result.errors.empty()) CHECK(result.config == nullptr);
    return lines;
}

Lines warningsOf(const std::string& yaml) {
    LoadResult result = loadConfigString(yaml, "portico.yaml");
    INFO(Catch::Detail::stringify(errorsOf(yaml)));
    CHECK(result.ok());
    return result.warnings;
}

// Line 1 of most cases below: a valid listener, so that each case shows only its own error.
const std::string L = "listeners: [{address: 127.0.0.1:0}]\n";
// A valid route, for cases about other sections.
const std::string R = "routes: [{handler: health}]\n";

struct Case {
    std::string yaml;
    std::string error;
};

void checkCases(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        INFO("YAML:\n" << c.yaml);
        CHECK(errorsOf(c.yaml) == Lines{c.error});
    }
}

}  // namespace

TEST_CASE("the example of issue 2: an undefined upstream at its line and column",
          "[config][errors]") {
    const std::string yaml = R"(workers: auto
shutdown_timeout: 10s
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app:
    servers: [127.0.0.1:8000, 127.0.0.1:8001]
routes:
  - path: /healthz
    handler: health
  - host: example.com
    path: /api/
    strip_prefix: false
    upstream: ap
)";
    LoadResult result = loadConfigString(yaml, "portico.yaml");
    REQUIRE(result.errors.size() == 1);
    const ConfigError& error = result.errors[0];
    CHECK(error.file == "portico.yaml");
    CHECK(error.line == 14);
    CHECK(error.column == 15);
    CHECK(error.key == "routes[1].upstream");
    CHECK(error.message == "no upstream named \"ap\"");
    CHECK(error.toString() == "portico.yaml:14:15: routes[1].upstream: no upstream named \"ap\"");
    CHECK_FALSE(result.ok());
    CHECK(result.config == nullptr);
}

TEST_CASE("the file name is reported as given", "[config][errors]") {
    CHECK(errorsOf(L + R + "workers: many\n", "../etc/site.yaml") ==
          Lines{"../etc/site.yaml:3:10: workers: expected auto or a positive integer"});
}

TEST_CASE("YAML syntax errors carry their mark", "[config][errors]") {
    checkCases({
        {"listeners:\n  - address: [127.0.0.1:0\nroutes: []\n",
         "portico.yaml:3:7: invalid YAML: end of sequence flow not found"},
        {"listeners:\n  - address: *:8080\n",
         "portico.yaml:2:14: invalid YAML: the referenced anchor is not defined (a value starting "
         "with * must be quoted, e.g. \"*:8080\")"},
        {L + "workers: \"4", "portico.yaml:2:12: invalid YAML: illegal EOF in scalar"},
        {L + "a: b: c\n", "portico.yaml:2:5: invalid YAML: illegal map value"},
    });
}

TEST_CASE("an empty file, several documents or a non-mapping root are errors", "[config][errors]") {
    CHECK(errorsOf("") == Lines{"portico.yaml: the configuration is empty"});
    CHECK(errorsOf("# only a comment\n") == Lines{"portico.yaml: the configuration is empty"});
    CHECK(errorsOf(L + R + "---\nworkers: 2\n") ==
          Lines{"portico.yaml:4:1: expected one YAML document, found another here"});
    CHECK(errorsOf("- address: 127.0.0.1:0\n") ==
          Lines{"portico.yaml:1:1: expected a mapping",
                "portico.yaml:1:1: listeners: required key is missing"});
}

TEST_CASE("the YAML of a configuration is bounded before yaml-cpp builds it", "[config][errors][limits]") {
    // Found by fuzz_config (tests/fuzz/regressions/config/): yaml-cpp 0.7's LoadAll never
    // returns on a document that is only "," (it makes empty documents without end, memory
    // growing), and an alias inside its own anchor builds a cyclic tree.
    CHECK(errorsOf(",") == Lines{"portico.yaml:1:1: expected one YAML document, found another here"});
    CHECK(errorsOf(",imits: {max_bo*a_by\n") ==
          Lines{"portico.yaml:1:1: expected one YAML document, found another here"});
    CHECK(errorsOf("listeners: &l [*l]\n") ==
          Lines{"portico.yaml:1:16: an alias inside the node its anchor names (a cycle)"});
    // Nesting: 64 levels (the root map and 63 sequences) are read, and refused by the decoder;
    // 65 are not read.
    const auto nested = [](int depth) { return "x: " + std::string(depth, '[') + std::string(depth, ']') + "\n"; };
    CHECK(errorsOf(nested(63)).front() == "portico.yaml:1:1: x: unknown key");
    CHECK(errorsOf(nested(64)) == Lines{"portico.yaml:1:67: maps and sequences nested deeper than 64 levels"});
    // Billion laughs: 10 aliases of 10 aliases of ... stand for 10^6 nodes in a few hundred bytes.
    std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i <= 6; ++i) {
        const std::string prev = "*a" + std::to_string(i - 1);
        laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int j = 0; j < 10; ++j) laughs += (j ? ", " : "") + prev;
        laughs += "]\n";
    }
    const Lines too_many = errorsOf(laughs);
    REQUIRE(too_many.size() == 1);
    CHECK(too_many.front().find("more than 100000 YAML nodes") != std::string::npos);
    // Size: a file over 1 MiB is not read as a configuration.
    CHECK(errorsOf("# " + std::string(1024 * 1024, 'x') + "\n") ==
          Lines{"portico.yaml: larger than 1 MiB: not a configuration"});
}

TEST_CASE("unknown keys are errors in every section", "[config][errors]") {
    checkCases({
        {L + R + "worker: 4\n", "portico.yaml:3:1: worker: unknown key (did you mean workers?)"},
        {L + "routes:\n  - pathh: /x\n    handler: health\n",
         "portico.yaml:3:5: routes[0].pathh: unknown key (did you mean path?)"},
        {L + R + "limits: {max_body: 1MiB}\n", "portico.yaml:3:10: limits.max_body: unknown key"},
        {L + R + "log:\n  format: json\n", "portico.yaml:4:3: log.format: unknown key"},
        {"listeners:\n  - address: 127.0.0.1:0\n    backlog: 5\n" + R,
         "portico.yaml:3:5: listeners[0].backlog: unknown key"},
        {L + "upstreams:\n  app:\n    servers: [127.0.0.1:1]\n    weight: 2\n"
             "routes: [{upstream: app}]\n",
         "portico.yaml:5:5: upstreams.app.weight: unknown key"},
        {L + "routes:\n  - path: /echo\n    handler: echo\n    websocket: {max_messages: 1}\n",
         "portico.yaml:5:17: routes[0].websocket.max_messages: unknown key"},
        {L + "routes:\n  - handler: pubsub\n    pubsub: {token: x}\n",
         "portico.yaml:4:14: routes[0].pubsub.token: unknown key"},
        {"listeners:\n  - address: \"*:8443\"\n    tls:\n      certificates: [{cert: a, key: b}]\n"
         "      protocols: [h1]\n" +
             R,
         "portico.yaml:5:7: listeners[0].tls.protocols: unknown key"},
        {"listeners:\n  - address: \"*:8443\"\n    tls:\n      certificates: [{cert: a, key: b, "
         "chain: c}]\n" +
             R,
         "portico.yaml:4:40: listeners[0].tls.certificates[0].chain: unknown key"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], tls: {cafile: x}}}\nroutes: [{upstream: "
             "u}]\n",
         "portico.yaml:2:47: upstreams.u.tls.cafile: unknown key"},
    });
}

TEST_CASE("an unknown key one typo away from a known one names it", "[config][errors]") {
    checkCases({
        {L + R + "limts: {max_connections: 5}\n", "portico.yaml:3:1: limts: unknown key (did you mean limits?)"},
        {"listeners:\n  - address: 127.0.0.1:0\n    tsl: {}\n" + R,
         "portico.yaml:3:5: listeners[0].tsl: unknown key (did you mean tls?)"},
        {L + R + "limits: {max_conections: 5}\n",
         "portico.yaml:3:10: limits.max_conections: unknown key (did you mean max_connections?)"},
        {L + R + "colour: red\n", "portico.yaml:3:1: colour: unknown key"},  // no key is that close
    });
}

TEST_CASE("a key written twice is an error", "[config][errors]") {
    checkCases({
        {L + R + "workers: 2\nworkers: 3\n", "portico.yaml:4:1: workers: duplicate key"},
        {L + "routes:\n  - path: /a\n    path: /b\n    handler: health\n",
         "portico.yaml:4:5: routes[0].path: duplicate key"},
        {L + "routes:\n  - upstream: u\n    set_headers: {X-A: 1, x-a: 2}\nupstreams: {u: "
             "{servers: [h:1]}}\n",
         "portico.yaml:4:27: routes[0].set_headers.x-a: duplicate header (names are "
         "case-insensitive)"},
    });
}

TEST_CASE("wrong types name the expected type", "[config][errors]") {
    checkCases({
        {L + R + "limits:\n  max_body_bytes: 10MB\n",
         "portico.yaml:4:19: limits.max_body_bytes: expected a size like 10MiB"},
        {L + R + "limits: {max_header_bytes: -1}\n",
         "portico.yaml:3:28: limits.max_header_bytes: expected a size like 10MiB"},
        {L + R + "limits: {max_body_bytes: 99999999999GiB}\n",
         "portico.yaml:3:26: limits.max_body_bytes: expected a size like 10MiB"},
        {L + R + "limits: {max_body_bytes: [1]}\n",
         "portico.yaml:3:26: limits.max_body_bytes: expected a size like 10MiB"},
        {L + R + "shutdown_timeout: 10\n",
         "portico.yaml:3:19: shutdown_timeout: expected a duration like 10s"},
        {L + R + "limits: {keepalive_timeout: -5s}\n",
         "portico.yaml:3:29: limits.keepalive_timeout: expected a duration like 10s"},
        {L + R + "limits: {keepalive_timeout: 9999999999999999h}\n",
         "portico.yaml:3:29: limits.keepalive_timeout: expected a duration like 10s"},
        {L + R + "limits: {max_connections: 1e4}\n",
         "portico.yaml:3:27: limits.max_connections: expected a non-negative integer"},
        {L + R + "limits: {max_connections: 0}\n",
         "portico.yaml:3:27: limits.max_connections: must be greater than 0"},
        {L + R + "limits: {client_body_timeout: 0s}\n",
         "portico.yaml:3:31: limits.client_body_timeout: must be greater than 0"},
        {L + R + "limits: {client_send_timeout: 0s}\n",
         "portico.yaml:3:31: limits.client_send_timeout: must be greater than 0"},
        {L + R + "workers: 0\n", "portico.yaml:3:10: workers: expected auto or a positive integer"},
        {L + R + "workers: -2\n",
         "portico.yaml:3:10: workers: expected auto or a positive integer"},
        {L + R + "workers: 5000\n", "portico.yaml:3:10: workers: at most 1024 workers"},
        {L + R + "reload_drain_timeout: soon\n",
         "portico.yaml:3:23: reload_drain_timeout: expected off or a duration like 10m"},
        {L + R + "limits: 5\n", "portico.yaml:3:9: limits: expected a mapping"},
        {L + "routes: {path: /}\n", "portico.yaml:2:9: routes: expected a list"},
        {L + R + "log: {access: \"\"}\n",
         "portico.yaml:3:15: log.access: expected stdout, off or a file path"},
        {L + "routes:\n  - upstream: u\n    strip_prefix: yes\nupstreams: {u: {servers: [h:1]}}\n",
         "portico.yaml:4:19: routes[0].strip_prefix: expected true or false"},
        {L + "routes:\n  - path: /\n    upstream:\n",
         "portico.yaml:4:5: routes[0].upstream: expected a string"},
        {L + "routes:\n  - path: /\n    upstream: [a, b]\n",
         "portico.yaml:4:15: routes[0].upstream: expected a string"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], keepalive: -1}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:52: upstreams.u.keepalive: expected a non-negative integer"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], connect_timeout: 0}}\nroutes: [{upstream: "
             "u}]\n",
         "portico.yaml:2:58: upstreams.u.connect_timeout: must be greater than 0"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], send_timeout: 0s}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:55: upstreams.u.send_timeout: must be greater than 0"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], send_timeout: soon}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:55: upstreams.u.send_timeout: expected a duration like 10s"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], send_timeout: -1s}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:55: upstreams.u.send_timeout: expected a duration like 10s"},
        {L + "upstreams: {u: {servers: [127.0.0.1:1], sendtimeout: 1s}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:41: upstreams.u.sendtimeout: unknown key (did you mean send_timeout?)"},
        {L + "upstreams: {u: {servers: 127.0.0.1:1}}\nroutes: [{upstream: u}]\n",
         "portico.yaml:2:26: upstreams.u.servers: expected a list of host:port"},
        {"listeners: [{address: 127.0.0.1:80, redirect_https: 70000}]\n" + R,
         "portico.yaml:1:53: listeners[0].redirect_https: expected a port number from 1 to 65535"},
        {L + "routes:\n  - upstream: u\n    set_headers: [X-A]\nupstreams: {u: {servers: [h:1]}}\n",
         "portico.yaml:4:18: routes[0].set_headers: expected a mapping"},
        {L + "routes:\n  - upstream: u\n    set_headers: {X-A: {b: c}}\nupstreams: {u: {servers: "
             "[h:1]}}\n",
         "portico.yaml:4:24: routes[0].set_headers.X-A: expected a string"},
        {L + "routes:\n  - handler: echo\n    websocket: {origins: https://a.com}\n",
         "portico.yaml:4:26: routes[0].websocket.origins: expected a list of strings"},
        {L + "routes:\n  - handler: echo\n    websocket: {max_message_bytes: 0}\n",
         "portico.yaml:4:36: routes[0].websocket.max_message_bytes: must be greater than 0"},
        {L + "upstreams: {u: {servers: [h:1]}}\nroutes:\n  - upstream: u\n    websocket: {mode: frames, http: "
             "{max_batch_bytes: 1KiB}}\n",
         "portico.yaml:5:37: routes[0].websocket.http: only for mode: http"},
        {L + "upstreams: {u: {servers: [h:1]}}\nroutes:\n  - upstream: u\n    websocket: {mode: http, http: "
             "{max_batch_bytes: 0}}\n",
         "portico.yaml:5:53: routes[0].websocket.http.max_batch_bytes: must be greater than 0"},
        {L + "upstreams: {u: {servers: [h:1]}}\nroutes:\n  - upstream: u\n    websocket: {mode: http, http: "
             "{batch: 1}}\n",
         "portico.yaml:5:36: routes[0].websocket.http.batch: unknown key"},
    });
}

TEST_CASE("enumerations name the unknown word and the choices", "[config][errors]") {
    checkCases({
        {L + "routes:\n  - path: /\n    handler: helth\n",
         "portico.yaml:4:14: routes[0].handler: unknown handler \"helth\" (expected health, "
         "static, "
         "echo, pubsub, metrics, status, dashboard or publish)"},
        {L + "upstreams:\n  app:\n    servers: [127.0.0.1:1]\n    balance: random\n"
             "routes: [{upstream: app}]\n",
         "portico.yaml:5:14: upstreams.app.balance: unknown balance \"random\" (expected "
         "round_robin, least_conn or ip_hash)"},
        {L + "upstreams: {chat: {servers: [127.0.0.1:1]}}\nroutes:\n  - upstream: chat\n"
             "    websocket:\n      mode: fast\n",
         "portico.yaml:6:13: routes[0].websocket.mode: unknown mode \"fast\" (expected tunnel, "
         "frames or http)"},
        {L + R + "log: {level: verbose}\n",
         "portico.yaml:3:14: log.level: unknown level \"verbose\" (expected error, warn, info or "
         "debug)"},
        {L + R + "log: {access_format: apache}\n",
         "portico.yaml:3:22: log.access_format: unknown access_format \"apache\" (expected json or "
         "combined)"},
        {L + "routes:\n  - handler: {name: echo}\n",
         "portico.yaml:3:14: routes[0].handler: expected health, static, echo, pubsub, metrics, "
         "status, dashboard or publish"},
    });
}

TEST_CASE("listener addresses: invalid, duplicate, overlapping, missing", "[config][errors]") {
    checkCases({
        {"listeners: [{address: 8080}]\n" + R,
         "portico.yaml:1:23: listeners[0].address: invalid address \"8080\" (expected host:port, "
         "[v6]:port or *:port)"},
        {"listeners: [{address: \"::1:8080\"}]\n" + R,
         "portico.yaml:1:23: listeners[0].address: invalid address \"::1:8080\" (expected "
         "host:port, [v6]:port or *:port)"},
        {"listeners: [{address: 127.0.0.1:65536}]\n" + R,
         "portico.yaml:1:23: listeners[0].address: invalid address \"127.0.0.1:65536\" (expected "
         "host:port, [v6]:port or *:port)"},
        {"listeners:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n" + R,
         "portico.yaml:3:14: listeners[1].address: duplicate listener address 127.0.0.1:8080 (also "
         "listeners[0])"},
        {"listeners:\n  - address: \"*:8080\"\n  - address: \"[::1]:8081\"\n  - address: "
         "\"[::1]:8080\"\n" +
             R,
         "portico.yaml:4:14: listeners[2].address: listener address [::1]:8080 overlaps *:8080 "
         "(listeners[0])"},
        {"listeners: [{redirect_https: 443}]\n" + R,
         "portico.yaml:1:13: listeners[0].address: required key is missing"},
        {R, "portico.yaml:1:1: listeners: required key is missing"},
        {"listeners: []\n" + R, "portico.yaml:1:12: listeners: at least one listener is required"},
        {"listeners: [{address: 127.0.0.1:80, redirect_https: 80}]\n" + R,
         "portico.yaml:1:53: listeners[0].redirect_https: redirects to its own port: every request "
         "would loop"},
    });
}

TEST_CASE("listeners on port 0 never collide", "[config][errors]") {
    CHECK(errorsOf("listeners:\n  - address: 127.0.0.1:0\n  - address: 127.0.0.1:0\n" + R).empty());
}

TEST_CASE("routes: upstream or handler, and the keys of each kind", "[config][errors]") {
    const std::string U = "upstreams: {app: {servers: [127.0.0.1:1]}}\n";  // line 2
    checkCases({
        {L + "routes:\n  - path: /\n",
         "portico.yaml:3:5: routes[0]: a route needs an upstream or a handler"},
        {L + U + "routes:\n  - path: /\n    upstream: app\n    handler: health\n",
         "portico.yaml:6:14: routes[0]: a route has an upstream or a handler, not both"},
        {L + "routes:\n  - path: /\n    handler: static\n",
         "portico.yaml:3:5: routes[0].root: required by handler: static"},
        {L + "routes:\n  - handler: health\n    root: www\n",
         "portico.yaml:4:11: routes[0].root: only for handler: static"},
        {L + "routes:\n  - handler: echo\n    pubsub: {history: 5}\n",
         "portico.yaml:4:13: routes[0].pubsub: only for handler: pubsub"},
        {L + "routes:\n  - handler: health\n    websocket: {idle_timeout: 1m}\n",
         "portico.yaml:4:16: routes[0].websocket: only for routes to an upstream and handlers echo "
         "and pubsub"},
        {L + "routes:\n  - handler: echo\n    websocket: {mode: frames}\n",
         "portico.yaml:4:23: routes[0].websocket.mode: only for routes to an upstream: built-in "
         "handlers always parse frames"},
        {L + "routes:\n  - handler: static\n    root: www\n    strip_prefix: true\n",
         "portico.yaml:5:19: routes[0].strip_prefix: only for routes to an upstream"},
        {L + "routes:\n  - handler: health\n    set_headers: {X-A: b}\n",
         "portico.yaml:4:18: routes[0].set_headers: only for routes to an upstream"},
        {L + U + "routes:\n  - upstream: app\n    set_headers: {Content-Length: 5}\n",
         "portico.yaml:5:19: routes[0].set_headers.Content-Length: Content-Length is managed by "
         "Portico and cannot be set"},
        {L + U + "routes:\n  - upstream: app\n    set_headers: {\"X A\": b}\n",
         "portico.yaml:5:19: routes[0].set_headers.X A: expected a header name"},
        {L + U + "routes:\n  - upstream: app\n    set_headers: {X-A: \"a\\r\\nX-B: c\"}\n",
         "portico.yaml:5:24: routes[0].set_headers.X-A: a header value cannot hold control "
         "characters"},
        {L + U + "routes:\n  - upstream: app\n    path: api/\n",
         "portico.yaml:5:11: routes[0].path: expected a path starting with / (prefix) or =/ "
         "(exact)"},
        {L + U + "routes:\n  - upstream: app\n    path: \"/a b\"\n",
         "portico.yaml:5:11: routes[0].path: expected a path starting with / (prefix) or =/ "
         "(exact)"},
        {L + U + "routes:\n  - upstream: app\n    path: /a?b=1\n",
         "portico.yaml:5:11: routes[0].path: expected a path starting with / (prefix) or =/ "
         "(exact)"},
        {L + U + "routes:\n  - upstream: app\n    host: \"exa mple.com\"\n",
         "portico.yaml:5:11: routes[0].host: expected a host name like example.com or "
         "*.example.com"},
        {L + U + "routes:\n  - upstream: app\n    host: foo.*.com\n",
         "portico.yaml:5:11: routes[0].host: expected a host name like example.com or "
         "*.example.com"},
        {L + U + "routes:\n  - upstream: app\n    websocket: {origins: [\"https://a.com/\"]}\n",
         "portico.yaml:5:27: routes[0].websocket.origins[0]: expected an origin like "
         "https://example.com (scheme://host[:port], no path)"},
        {L + U +
             "routes:\n  - upstream: app\n    websocket: {subprotocols: [chat.v1, \"chat v2\"]}\n",
         "portico.yaml:5:41: routes[0].websocket.subprotocols[1]: expected a subprotocol name (an "
         "HTTP token)"},
        {L + "routes:\n  - handler: pubsub\n    pubsub: {publish_token: \"my secret\"}\n",
         "portico.yaml:4:29: routes[0].pubsub.publish_token: expected a bearer token (letters, "
         "digits and -._~+/)"},
    });
}

TEST_CASE("upstreams: servers required, non-empty and valid", "[config][errors]") {
    const std::string UR = "routes: [{upstream: app}]\n";
    checkCases({
        {L + "upstreams:\n  app:\n    servers: []\n" + UR,
         "portico.yaml:4:14: upstreams.app.servers: at least one server is required"},
        {L + "upstreams:\n  app:\n    servers:\n" + UR,
         "portico.yaml:4:5: upstreams.app.servers: at least one server is required"},
        {L + "upstreams:\n  app: {balance: ip_hash}\n" + UR,
         "portico.yaml:3:3: upstreams.app.servers: required key is missing"},
        {L + "upstreams:\n  app:\n    servers: [127.0.0.1:1, \"*:80\"]\n" + UR,
         "portico.yaml:4:28: upstreams.app.servers[1]: invalid server address \"*:80\" (expected "
         "host:port or [v6]:port)"},
        {L + "upstreams:\n  app:\n    servers: [127.0.0.1:0]\n" + UR,
         "portico.yaml:4:15: upstreams.app.servers[0]: invalid server address \"127.0.0.1:0\" "
         "(expected host:port or [v6]:port)"},
        {L + "upstreams:\n  my.app: {servers: [h:1]}\nroutes: [{upstream: my.app}]\n",
         "portico.yaml:3:3: upstreams.my.app: an upstream name is letters, digits, - and _"},
        {L + "upstreams:\n  app: {servers: [h:1], tls: {sni: \"bad name\"}}\n" + UR,
         "portico.yaml:3:36: upstreams.app.tls.sni: expected a host name"},
        {L + "upstreams:\n  app: {servers: [h:1], tls: {verify: maybe}}\n" + UR,
         "portico.yaml:3:39: upstreams.app.tls.verify: expected true or false"},
    });
}

TEST_CASE("listener TLS settings are checked", "[config][errors]") {
    const std::string A = "listeners:\n  - address: \"*:8443\"\n    tls:\n";  // lines 1-3
    checkCases({
        {A + "      alpn: [http/1.1]\n" + R,
         "portico.yaml:4:7: listeners[0].tls.certificates: required key is missing"},
        {"listeners:\n  - address: \"*:8443\"\n    tls:\n" + R,
         "portico.yaml:3:5: listeners[0].tls.certificates: required key is missing"},
        {A + "      certificates: []\n" + R,
         "portico.yaml:4:21: listeners[0].tls.certificates: at least one certificate is required"},
        {A + "      certificates:\n        - {cert: site.crt}\n" + R,
         "portico.yaml:5:11: listeners[0].tls.certificates[0].key: required key is missing"},
        {A + "      certificates: [{cert: a, key: \"\"}]\n" + R,
         "portico.yaml:4:37: listeners[0].tls.certificates[0].key: expected a file path"},
        {A + "      certificates: [{cert: a, key: b}]\n      min_version: \"1.1\"\n" + R,
         "portico.yaml:5:20: listeners[0].tls.min_version: unknown min_version \"1.1\" (expected "
         "1.2 or 1.3)"},
        {A + "      certificates: [{cert: a, key: b}]\n      alpn: [h3, http/1.1]\n" + R,
         "portico.yaml:5:14: listeners[0].tls.alpn[0]: unsupported protocol \"h3\" (Portico speaks "
         "h2, http/1.1 and http/1.0)"},
        {A + "      certificates: [{cert: a, key: b}]\n    http2: true\n" + R,
         "portico.yaml:5:12: listeners[0].http2: a TLS listener negotiates HTTP/2 with tls.alpn: [h2, http/1.1]"},
        {A + "      certificates: [{cert: a, key: b}]\n      session_tickets: 1\n" + R,
         "portico.yaml:5:24: listeners[0].tls.session_tickets: expected true or false"},
        {A + "      certificates: [{cert: a, key: b}]\n    redirect_https: 443\n" + R,
         "portico.yaml:5:21: listeners[0].redirect_https: a TLS listener cannot redirect to HTTPS"},
    });
}

TEST_CASE("every error is reported, top to bottom, without cascades", "[config][errors]") {
    const std::string yaml = R"(workers: none
listeners:
  - address: "127.0.0.1:80"
  - address: 127.0.0.1:80
limits:
  max_body_bytes: 10MB
  max_headers: 1
upstreams:
  app:
    servers: [bad]
    balance: fastest
routes:
  - path: /api/
    upstream: ap
  - pathh: /x
    handler: health
  - path: /
    handler: static
  - path: /ws
    handler: nope
    root: www
)";
    CHECK(errorsOf(yaml) ==
          Lines{
              "portico.yaml:1:10: workers: expected auto or a positive integer",
              "portico.yaml:4:14: listeners[1].address: duplicate listener address 127.0.0.1:80 "
              "(also listeners[0])",
              "portico.yaml:6:19: limits.max_body_bytes: expected a size like 10MiB",
              "portico.yaml:7:3: limits.max_headers: unknown key",
              "portico.yaml:10:15: upstreams.app.servers[0]: invalid server address \"bad\" "
              "(expected host:port or [v6]:port)",
              "portico.yaml:11:14: upstreams.app.balance: unknown balance \"fastest\" (expected "
              "round_robin, least_conn or ip_hash)",
              "portico.yaml:14:15: routes[0].upstream: no upstream named \"ap\"",
              "portico.yaml:15:5: routes[1].pathh: unknown key (did you mean path?)",
              "portico.yaml:17:5: routes[2].root: required by handler: static",
              "portico.yaml:20:14: routes[3].handler: unknown handler \"nope\" (expected health, "
              "static, echo, pubsub, metrics, status, dashboard or publish)",
          });
}

TEST_CASE("warnings do not fail the load", "[config][errors]") {
    CHECK(warningsOf(L + "upstreams:\n  s:\n    servers: [h:1]\n    tls: {verify: false}\n"
                         "routes: [{upstream: s}]\n") ==
          Lines{"portico.yaml:5:19: upstreams.s.tls.verify: certificates of this upstream are not "
                "verified: anyone on the path can impersonate it"});
    CHECK(
        warningsOf(L + "upstreams: {s: {servers: [h:1]}}\nroutes:\n  - upstream: s\n"
                       "    websocket: {ping_interval: 5s}\n") ==
        Lines{"portico.yaml:5:32: routes[0].websocket.ping_interval: has no effect in tunnel mode "
              "(set mode: frames)"});
    CHECK(warningsOf(L + "upstreams: {s: {servers: [h:1]}, t: {servers: [h:2]}}\n" + R) ==
          Lines{"portico.yaml:2:13: upstreams.s: not used by any route",
                "portico.yaml:2:34: upstreams.t: not used by any route"});
    CHECK(warningsOf(
              L + "routes:\n  - path: /\n    handler: health\n  - path: /x\n    handler: "
                  "echo\n  - path: =/x\n    handler: echo\n  - path: =/x\n    handler: echo\n") ==
          Lines{"portico.yaml:5:5: routes[1]: never matches: routes[0] matches first",
                "portico.yaml:7:5: routes[2]: never matches: routes[0] matches first",
                "portico.yaml:9:5: routes[3]: never matches: routes[0] matches first"});
    CHECK(warningsOf(L +
                     "routes:\n  - path: /api\n    handler: health\n  - path: /apix\n    handler: "
                     "echo\n  - host: a.com\n    path: /api/x\n    handler: echo\n")
              .empty());  // "/api" may match by path segment only: no certainty, no warning
    CHECK(warningsOf(L) ==
          Lines{"portico.yaml:1:1: routes: no routes: every request is answered 404"});
}

TEST_CASE("control characters from the file reach the message escaped", "[config][errors]") {
    CHECK(errorsOf("listeners: [{address: \"\\e[31mx\"}]\nroutes: [{handler: health}]\n") ==
          Lines{"portico.yaml:1:23: listeners[0].address: invalid address \"\\x1B[31mx\" (expected "
                "host:port, [v6]:port or *:port)"});
}

TEST_CASE("a NUL in a key is printed as \\x00 and nothing after it is lost", "[config][errors]") {
    // YAML's "\0" escape puts a NUL byte in the key; printf's %s used to stop there, and the
    // operator saw "portico.yaml:3:3: routes[0].pa" with neither the rest of the key nor the
    // reason.
    const std::string yaml = L + "routes:\n  - {\"pa\\0th\": /x, handler: health}\n";
    LoadResult result = loadConfigString(yaml, "portico.yaml");
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].key == std::string("routes[0].pa\0th", 15));  // the bytes, kept as read
    const std::string line = result.errors[0].toString();
    CHECK(line == "portico.yaml:3:6: routes[0].pa\\x00th: unknown key (did you mean path?)");
    CHECK(line.find('\0') == std::string::npos);
    CHECK(std::string(line.c_str()) == line);  // what fprintf("%s") prints is the whole line
}

TEST_CASE("every byte outside printable ASCII is escaped in every part of an error", "[config][errors]") {
    CHECK(ConfigError{"a\tb.yaml", 1, 2, std::string("k\0\x7f\x1b", 4), std::string("m\r\n\xc3\xa9\\", 6)}.toString() ==
          "a\\x09b.yaml:1:2: k\\x00\\x7F\\x1B: m\\x0D\\x0A\\xC3\\xA9\\x5C");
    CHECK(ConfigError{"a.yaml", 0, 0, "", "quotes \"stay\" as they are"}.toString() ==
          "a.yaml: quotes \"stay\" as they are");
}

TEST_CASE("ConfigError::toString leaves out an unknown position or key", "[config][errors]") {
    CHECK(ConfigError{"a.yaml", 3, 7, "workers", "bad"}.toString() == "a.yaml:3:7: workers: bad");
    CHECK(ConfigError{"a.yaml", 3, 7, "", "bad"}.toString() == "a.yaml:3:7: bad");
    CHECK(ConfigError{"a.yaml", 0, 0, "", "bad"}.toString() == "a.yaml: bad");
}

TEST_CASE("loadConfigFile reports a file it cannot read", "[config][errors]") {
    LoadResult result = loadConfigFile("/nonexistent/portico.yaml");
    CHECK_FALSE(result.ok());
    CHECK(result.config == nullptr);
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].toString() ==
          "/nonexistent/portico.yaml: cannot open: No such file or directory");
    result = loadConfigFile("/tmp");
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].toString() == "/tmp: cannot read: Is a directory");
}
