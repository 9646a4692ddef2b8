// SPDX-License-Identifier: Apache-2.0
#pragma once
// Incremental UTF-8 validation (RFC 3629) for text messages and close reasons (RFC 6455 8.1).
// Feed it pieces in order (frame payloads, evbuffer chains, inflated chunks): it reports an
// invalid sequence as soon as its first offending byte is seen, and at the end whether the text
// stops at a character boundary.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico::ws {

class Utf8Validator {
public:
    // Validates the next `len` bytes. Returns false once the text seen so far (this call or an
    // earlier one) can no longer be valid UTF-8 whatever follows; the failure is sticky until
    // reset(). Overlong forms, surrogates (U+D800-DFFF) and code points above U+10FFFF fail.
    bool feed(const std::uint8_t* data, std::size_t len);
    bool feed(std::string_view text) {
        return feed(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    }

    bool failed() const { return state_ == kReject; }
    // True when everything fed so far is valid and complete (not stopping inside a character).
    bool complete() const { return state_ == kAccept; }
    void reset() { state_ = kAccept; }

    // One-shot check of a whole string.
    static bool isValid(std::string_view text) {
        Utf8Validator v;
        return v.feed(text) && v.complete();
    }

    // DFA states, pre-multiplied by the number of byte classes (see utf8_validator.cpp).
    static constexpr std::uint8_t kAccept = 0;
    static constexpr std::uint8_t kReject = 12;

private:
    std::uint8_t state_ = kAccept;
};

}  // namespace portico::ws
