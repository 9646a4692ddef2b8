// SPDX-License-Identifier: Apache-2.0
#include "portico/http/simple_response.h"

#include <event2/buffer.h>
#include <string>

#include "portico/http/header_rewrite.h"

namespace portico::http {

std::size_t writeSimpleResponse(evbuffer* out, int status, std::string_view content_type, std::string_view body,
                                KeepAlive keep_alive, const HeaderList& extra, bool head_only) {
    std::string head;
    head.reserve(160 + body.size());
    appendSimpleResponseHead(head, status, content_type, body.size(), keep_alive, extra);
    if (!head_only) head.append(body);
    evbuffer_add(out, head.data(), head.size());
    return head.size();
}

std::size_t writeErrorResponse(evbuffer* out, int status, KeepAlive keep_alive, const HeaderList& extra,
                               bool head_only) {
    std::string body = std::to_string(status);
    body.push_back(' ');
    body.append(reasonPhrase(status));
    body.push_back('\n');
    return writeSimpleResponse(out, status, "text/plain", body, keep_alive, extra, head_only);
}

}  // namespace portico::http
