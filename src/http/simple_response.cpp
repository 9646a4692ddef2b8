// SPDX-License-Identifier: Apache-2.0
#include "portico/http/simple_response.h"

#include <string>

#include "portico/http/header_rewrite.h"
#include "portico/http/http1_response_writer.h"

namespace portico::http {

namespace {

std::string errorBody(int status) {
    std::string body = std::to_string(status);
    body.push_back(' ');
    body.append(reasonPhrase(status));
    body.push_back('\n');
    return body;
}

}  // namespace

ResponseHead simpleResponseHead(int status, std::string_view content_type, const HeaderList& extra) {
    ResponseHead head;
    head.status = status;
    head.headers.reserve(2 + extra.size());
    head.headers.push_back({"Server", "portico"});
    if (!content_type.empty()) head.headers.push_back({"Content-Type", std::string(content_type)});
    head.headers.insert(head.headers.end(), extra.begin(), extra.end());
    return head;
}

void respond(ResponseSink& sink, int status, std::string_view content_type, std::string_view body,
             const HeaderList& extra, bool head_only) {
    sink.sendHead(simpleResponseHead(status, content_type, extra), ResponseBody{!head_only, body.size()});
    if (!head_only) sink.sendBody(body.data(), body.size());
    sink.endResponse();
}

void respondError(ResponseSink& sink, int status, const HeaderList& extra, bool head_only) {
    respond(sink, status, "text/plain", errorBody(status), extra, head_only);
}

std::size_t writeSimpleResponse(evbuffer* out, int status, std::string_view content_type, std::string_view body,
                                KeepAlive keep_alive, const HeaderList& extra, bool head_only) {
    Http1ResponseWriter writer(out);
    writer.reset(keep_alive.keep, keep_alive.announce ? 0 : 1);
    respond(writer, status, content_type, body, extra, head_only);
    return writer.bytes();
}

std::size_t writeErrorResponse(evbuffer* out, int status, KeepAlive keep_alive, const HeaderList& extra,
                               bool head_only) {
    return writeSimpleResponse(out, status, "text/plain", errorBody(status), keep_alive, extra, head_only);
}

}  // namespace portico::http
