// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/close_code.h"

#include "portico/ws/utf8_validator.h"

namespace portico::ws {

bool isValidCloseCodeOnWire(std::uint16_t code) {
    // RFC 6455 7.4.2: 3000-3999 are for libraries and frameworks, 4000-4999 private use.
    if (code >= 3000 && code <= 4999) return true;
    // RFC 6455 7.4.1 defines 1000-1011; 1004 is reserved, 1005 and 1006 must never be sent.
    // 1012-1014 (service restart, try again later, bad gateway) are IANA-registered and accepted
    // by the Autobahn TestSuite (case 7.9.x lists 0, 999, 1004-1006, 1016, 1100, 2000, 2999 as
    // invalid). 1015 (TLS failure) must never be sent either.
    if (code < 1000 || code > 1014) return false;
    return code != 1004 && code != close_code::kNoStatus && code != close_code::kAbnormal;
}

std::uint16_t parseClosePayload(const std::uint8_t* data, std::size_t len, ClosePayload& out) {
    out = ClosePayload{};
    if (len == 0) return 0;  // RFC 6455 5.5.1: the body is optional
    if (len == 1) return close_code::kProtocolError;  // a code is 2 bytes: 1 byte cannot be one
    const auto code = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
    if (!isValidCloseCodeOnWire(code)) return close_code::kProtocolError;
    const std::string_view reason(reinterpret_cast<const char*>(data + 2), len - 2);
    // RFC 6455 5.5.1 / 8.1: the reason is UTF-8; invalid data is 1007 like a bad text message.
    if (!Utf8Validator::isValid(reason)) return close_code::kInvalidPayload;
    out.code = code;
    out.reason = reason;
    return 0;
}

}  // namespace portico::ws
