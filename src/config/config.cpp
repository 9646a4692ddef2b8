// SPDX-License-Identifier: Apache-2.0
#include "portico/config/config.h"

namespace portico::config {

const Upstream* Config::findUpstream(const std::string& name) const {
    auto it = upstreams.find(name);
    return it == upstreams.end() ? nullptr : &it->second;
}

const char* toString(LogLevel level) {
    switch (level) {
        case LogLevel::Error: return "error";
        case LogLevel::Warn: return "warn";
        case LogLevel::Info: return "info";
        case LogLevel::Debug: return "debug";
    }
    return "?";
}

const char* toString(Balance balance) {
    switch (balance) {
        case Balance::RoundRobin: return "round_robin";
        case Balance::LeastConn: return "least_conn";
        case Balance::IpHash: return "ip_hash";
    }
    return "?";
}

const char* toString(WebSocketMode mode) {
    switch (mode) {
        case WebSocketMode::Tunnel: return "tunnel";
        case WebSocketMode::Frames: return "frames";
        case WebSocketMode::Http: return "http";
    }
    return "?";
}

const char* toString(IoUring mode) {
    switch (mode) {
        case IoUring::Off: return "off";
        case IoUring::Auto: return "auto";
        case IoUring::On: return "on";
    }
    return "?";
}

const char* toString(HandlerKind handler) {
    switch (handler) {
        case HandlerKind::None: return "none";
        case HandlerKind::Health: return "health";
        case HandlerKind::Static: return "static";
        case HandlerKind::Echo: return "echo";
        case HandlerKind::PubSub: return "pubsub";
        case HandlerKind::Publish: return "publish";
        case HandlerKind::Metrics: return "metrics";
        case HandlerKind::Status: return "status";
        case HandlerKind::Dashboard: return "dashboard";
    }
    return "?";
}

const char* toString(TlsVersion version) {
    switch (version) {
        case TlsVersion::Tls12: return "1.2";
        case TlsVersion::Tls13: return "1.3";
    }
    return "?";
}

}  // namespace portico::config
