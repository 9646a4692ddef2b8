// SPDX-License-Identifier: Apache-2.0
#include "portico/ws/utf8_validator.h"

#include <array>
#include <cstring>

namespace portico::ws {

namespace {

// A DFA in the style of Bjoern Hoehrmann's decoder, built at compile time from the RFC 3629
// section 4 grammar so that the table is readable rather than a wall of magic numbers.
//
// Byte classes:
//   0: 00-7F   1: 80-8F   2: 90-9F   3: A0-BF   4: C0-C1, F5-FF (never valid)
//   5: C2-DF   6: E0      7: E1-EC, EE-EF      8: ED   9: F0   10: F1-F3   11: F4
// States (index; stored multiplied by kClasses so a transition is one add and one load):
//   0 accept, 1 reject, 2 one continuation byte left, 3 two left, 4 three left,
//   5 after E0 (A0-BF next: no overlong), 6 after ED (80-9F next: no surrogates),
//   7 after F0 (90-BF next: no overlong), 8 after F4 (80-8F next: nothing above U+10FFFF).
constexpr int kClasses = 12;
constexpr int kStates = 9;

constexpr std::uint8_t byteClass(int b) {
    if (b <= 0x7F) return 0;
    if (b <= 0x8F) return 1;
    if (b <= 0x9F) return 2;
    if (b <= 0xBF) return 3;
    if (b <= 0xC1) return 4;
    if (b <= 0xDF) return 5;
    if (b == 0xE0) return 6;
    if (b == 0xED) return 8;
    if (b <= 0xEF) return 7;
    if (b == 0xF0) return 9;
    if (b <= 0xF3) return 10;
    if (b == 0xF4) return 11;
    return 4;
}

constexpr int next(int state, int cls) {
    constexpr int kAcc = 0, kRej = 1, kN1 = 2, kN2 = 3, kN3 = 4, kE0 = 5, kED = 6, kF0 = 7, kF4 = 8;
    const bool cont_80_8f = cls == 1, cont_90_9f = cls == 2, cont_a0_bf = cls == 3;
    const bool any_cont = cont_80_8f || cont_90_9f || cont_a0_bf;
    switch (state) {
        case kAcc:
            switch (cls) {
                case 0: return kAcc;
                case 5: return kN1;
                case 6: return kE0;
                case 7: return kN2;
                case 8: return kED;
                case 9: return kF0;
                case 10: return kN3;
                case 11: return kF4;
                default: return kRej;
            }
        case kN1: return any_cont ? kAcc : kRej;
        case kN2: return any_cont ? kN1 : kRej;
        case kN3: return any_cont ? kN2 : kRej;
        case kE0: return cont_a0_bf ? kN1 : kRej;
        case kED: return (cont_80_8f || cont_90_9f) ? kN1 : kRej;
        case kF0: return (cont_90_9f || cont_a0_bf) ? kN2 : kRej;
        case kF4: return cont_80_8f ? kN2 : kRej;
        default: return kRej;
    }
}

struct Tables {
    std::array<std::uint8_t, 256> cls{};
    std::array<std::uint8_t, kStates * kClasses> transition{};
};

constexpr Tables makeTables() {
    Tables t;
    for (int b = 0; b < 256; ++b) t.cls[static_cast<std::size_t>(b)] = byteClass(b);
    for (int s = 0; s < kStates; ++s)
        for (int c = 0; c < kClasses; ++c)
            t.transition[static_cast<std::size_t>(s * kClasses + c)] = static_cast<std::uint8_t>(next(s, c) * kClasses);
    return t;
}

constexpr Tables kTables = makeTables();
static_assert(Utf8Validator::kReject == 1 * kClasses, "reject state index is 1");
static_assert(kTables.transition[0] == Utf8Validator::kAccept);

}  // namespace

bool Utf8Validator::feed(const std::uint8_t* data, std::size_t len) {
    std::uint32_t state = state_;
    std::size_t i = 0;
    while (i < len) {
        if (state == kAccept) {
            // ASCII fast path: most text is ASCII, take 8 bytes at a time while no high bit is set.
            while (i + 8 <= len) {
                std::uint64_t word = 0;
                std::memcpy(&word, data + i, 8);
                if ((word & 0x8080808080808080ULL) != 0) break;
                i += 8;
            }
            if (i == len) break;
        }
        state = kTables.transition[state + kTables.cls[data[i]]];
        ++i;
        if (state == kReject) break;
    }
    state_ = static_cast<std::uint8_t>(state);
    return state_ != kReject;
}

}  // namespace portico::ws
