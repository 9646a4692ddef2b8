// SPDX-License-Identifier: Apache-2.0
#include "portico/core/json_reader.h"

#include <charconv>
#include <cstdlib>

namespace portico::core {

namespace {

class Reader {
public:
    explicit Reader(std::string_view text) : s_(text) {}

    bool document(JsonValue& out) {
        space();
        if (!value(out, 0)) return false;
        space();
        return at_ == s_.size();
    }
    std::size_t offset() const { return at_; }

private:
    void space() {
        while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) ++at_;
    }
    bool literal(std::string_view word) {
        if (s_.substr(at_, word.size()) != word) return false;
        at_ += word.size();
        return true;
    }

    bool value(JsonValue& out, int depth) {
        if (at_ >= s_.size() || depth > kMaxJsonDepth) return false;
        switch (s_[at_]) {
            case '{': return object(out, depth);
            case '[': return array(out, depth);
            case '"':
                out.kind = JsonValue::Kind::String;
                return string(out.string);
            case 't':
                out.kind = JsonValue::Kind::Bool;
                out.boolean = true;
                return literal("true");
            case 'f':
                out.kind = JsonValue::Kind::Bool;
                return literal("false");
            case 'n': return literal("null");
            default: return number(out);
        }
    }

    bool object(JsonValue& out, int depth) {
        out.kind = JsonValue::Kind::Object;
        ++at_;
        space();
        if (at_ < s_.size() && s_[at_] == '}') {
            ++at_;
            return true;
        }
        for (;;) {
            space();
            std::string key;
            if (at_ >= s_.size() || s_[at_] != '"' || !string(key)) return false;
            space();
            if (at_ >= s_.size() || s_[at_] != ':') return false;
            ++at_;
            space();
            JsonValue member;
            if (!value(member, depth + 1)) return false;
            out.object[std::move(key)] = std::move(member);
            space();
            if (at_ < s_.size() && s_[at_] == ',') {
                ++at_;
                continue;
            }
            if (at_ < s_.size() && s_[at_] == '}') {
                ++at_;
                return true;
            }
            return false;
        }
    }

    bool array(JsonValue& out, int depth) {
        out.kind = JsonValue::Kind::Array;
        ++at_;
        space();
        if (at_ < s_.size() && s_[at_] == ']') {
            ++at_;
            return true;
        }
        for (;;) {
            space();
            JsonValue element;
            if (!value(element, depth + 1)) return false;
            out.array.push_back(std::move(element));
            space();
            if (at_ < s_.size() && s_[at_] == ',') {
                ++at_;
                continue;
            }
            if (at_ < s_.size() && s_[at_] == ']') {
                ++at_;
                return true;
            }
            return false;
        }
    }

    bool number(JsonValue& out) {
        // RFC 8259 6: -? int frac? exp?; checked by hand, converted by strtod.
        const std::size_t start = at_;
        if (at_ < s_.size() && s_[at_] == '-') ++at_;
        if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') return false;
        if (s_[at_] == '0') {
            ++at_;
        } else {
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        }
        if (at_ < s_.size() && s_[at_] == '.') {
            ++at_;
            if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') return false;
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        }
        if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
            ++at_;
            if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
            if (at_ >= s_.size() || s_[at_] < '0' || s_[at_] > '9') return false;
            while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
        }
        const std::string text(s_.substr(start, at_ - start));
        out.kind = JsonValue::Kind::Number;
        out.number = std::strtod(text.c_str(), nullptr);
        return true;
    }

    static void appendUtf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    bool hex4(unsigned& out) {
        if (s_.size() - at_ < 4) return false;
        auto [end, ec] = std::from_chars(s_.data() + at_, s_.data() + at_ + 4, out, 16);
        if (ec != std::errc() || end != s_.data() + at_ + 4) return false;
        at_ += 4;
        return true;
    }

    bool string(std::string& out) {
        ++at_;  // the opening quote
        while (at_ < s_.size()) {
            const char c = s_[at_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false;  // RFC 8259 7: escaped
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_ >= s_.size()) return false;
            const char e = s_[at_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        // A surrogate pair (RFC 8259 7): the low half must follow.
                        unsigned low = 0;
                        if (s_.substr(at_, 2) != "\\u") return false;
                        at_ += 2;
                        if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        return false;
                    }
                    appendUtf8(out, cp);
                    break;
                }
                default: return false;
            }
        }
        return false;
    }

    std::string_view s_;
    std::size_t at_ = 0;
};

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
    if (kind != Kind::Object) return nullptr;
    auto it = object.find(std::string(key));
    return it == object.end() ? nullptr : &it->second;
}

const std::string* JsonValue::findString(std::string_view key) const {
    const JsonValue* v = find(key);
    return v && v->kind == Kind::String ? &v->string : nullptr;
}

std::optional<JsonValue> parseJson(std::string_view text, std::size_t* error_offset) {
    Reader reader(text);
    JsonValue value;
    if (reader.document(value)) return value;
    if (error_offset) *error_offset = reader.offset();
    return std::nullopt;
}

}  // namespace portico::core
