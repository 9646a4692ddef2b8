// SPDX-License-Identifier: Apache-2.0
#include "pubsub/redis_cluster.h"

#include <algorithm>
#include <charconv>
#include <hiredis/hiredis.h>

namespace portico::pubsub::cluster {

namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the cluster specification's
// appendix gives it.
std::uint16_t crc16(std::string_view data) {
    std::uint16_t crc = 0;
    for (unsigned char byte : data) {
        crc ^= static_cast<std::uint16_t>(byte << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

bool integer(const redisReply* r, long long& out) {
    if (!r || r->type != REDIS_REPLY_INTEGER) return false;
    out = r->integer;
    return true;
}

bool port(std::string_view text, std::uint16_t& out) {
    return std::from_chars(text.data(), text.data() + text.size(), out).ec == std::errc() && out != 0;
}

}  // namespace

std::uint16_t keySlot(std::string_view key) {
    const std::size_t open = key.find('{');
    if (open != std::string_view::npos) {
        const std::size_t close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
    }
    return static_cast<std::uint16_t>(crc16(key) % kSlots);
}

const Node* SlotMap::at(std::uint16_t slot) const {
    if (slot >= owner.size() || owner[slot] == kNoOwner) return nullptr;
    return &masters[owner[slot]];
}

bool parseSlots(const redisReply* reply, std::string_view default_host, SlotMap& out) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return false;
    SlotMap map;
    map.owner.assign(kSlots, kNoOwner);
    for (std::size_t i = 0; i < reply->elements; ++i) {
        const redisReply* range = reply->element[i];
        long long first = 0, last = 0, p = 0;
        if (!range || range->type != REDIS_REPLY_ARRAY || range->elements < 3 || !integer(range->element[0], first) ||
            !integer(range->element[1], last) || first < 0 || last < first || last >= static_cast<long long>(kSlots))
            return false;
        const redisReply* master = range->element[2];
        if (!master || master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
            master->element[0]->type != REDIS_REPLY_STRING || !integer(master->element[1], p) || p <= 0 || p > 65535)
            return false;
        Node node;
        node.host.assign(master->element[0]->str, master->element[0]->len);
        if (node.host.empty() || node.host == "?") node.host = std::string(default_host);
        node.port = static_cast<std::uint16_t>(p);
        auto it = std::find(map.masters.begin(), map.masters.end(), node);
        const auto index = static_cast<std::uint16_t>(it - map.masters.begin());
        if (it == map.masters.end()) map.masters.push_back(std::move(node));
        std::fill(map.owner.begin() + first, map.owner.begin() + last + 1, index);
    }
    out = std::move(map);
    return true;
}

bool parseRedirect(std::string_view error, Redirect& out) {
    Redirect r;
    if (error.substr(0, 6) == "MOVED ") {
        error.remove_prefix(6);
    } else if (error.substr(0, 4) == "ASK ") {
        r.ask = true;
        error.remove_prefix(4);
    } else {
        return false;
    }
    const std::size_t space = error.find(' ');
    if (space == std::string_view::npos) return false;
    const std::string_view slot = error.substr(0, space), address = error.substr(space + 1);
    const std::size_t colon = address.rfind(':');
    if (std::from_chars(slot.data(), slot.data() + slot.size(), r.slot).ec != std::errc() || r.slot >= kSlots ||
        colon == std::string_view::npos || !port(address.substr(colon + 1), r.node.port))
        return false;
    r.node.host = std::string(address.substr(0, colon));
    out = std::move(r);
    return true;
}

}  // namespace portico::pubsub::cluster
