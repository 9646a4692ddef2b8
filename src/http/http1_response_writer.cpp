// SPDX-License-Identifier: Apache-2.0
#include "portico/http/http1_response_writer.h"

#include <cstdio>
#include <event2/buffer.h>

namespace portico::http {

void Http1ResponseWriter::reset(bool keep_alive, int client_version_minor) {
    framing_ = BodyFraming::None;
    bytes_ = 0;
    status_ = 0;
    version_minor_ = client_version_minor;
    keep_alive_ = keep_alive;
    kept_alive_ = false;
}

void Http1ResponseWriter::append(const char* data, std::size_t length) {
    evbuffer_add(out_, data, length);
    bytes_ += length;
}

void Http1ResponseWriter::sendHead(const ResponseHead& head, const ResponseBody& body) {
    ClientResponseInfo info;
    info.client_version_minor = version_minor_;
    if (head.status >= 100 && head.status < 200 && head.status != 101) {
        // Interim (100 Continue, 103 Early Hints): relayed as is, the final head follows. Not to
        // an HTTP/1.0 client (RFC 9110 15.2: MUST NOT), which would take it for the answer.
        if (version_minor_ >= 1) bytes_ += appendClientResponseHead(out_, head, info);
        return;
    }
    status_ = head.status;
    if (head.status == 101) {
        info.upgrade = true;
        framing_ = BodyFraming::None;
        kept_alive_ = false;
        bytes_ += writeUpgradeHead(head, info);
        return;
    }
    if (!body.present) {
        framing_ = BodyFraming::None;
        // A HEAD or 304 response describes the body it would have: its length goes on.
        if (body.length) {
            info.framing = BodyFraming::ContentLength;
            info.content_length = *body.length;
        }
    } else if (body.length) {
        framing_ = info.framing = BodyFraming::ContentLength;
        info.content_length = *body.length;
    } else {
        // Length unknown: chunked keeps an HTTP/1.1 connection; HTTP/1.0 has only the close.
        framing_ = info.framing = version_minor_ >= 1 ? BodyFraming::Chunked : BodyFraming::UntilClose;
    }
    kept_alive_ = info.keep_alive = keep_alive_ && framing_ != BodyFraming::UntilClose && connectionMayStayOpen();
    bytes_ += appendClientResponseHead(out_, head, info);
}

std::size_t Http1ResponseWriter::writeUpgradeHead(const ResponseHead& head, const ClientResponseInfo& info) {
    return appendClientResponseHead(out_, head, info);
}

void Http1ResponseWriter::sendBody(const char* data, std::size_t length) {
    if (length == 0) return;
    if (framing_ != BodyFraming::Chunked) {
        append(data, length);
        return;
    }
    char line[24];
    const int n = snprintf(line, sizeof line, "%zx\r\n", length);
    append(line, static_cast<std::size_t>(n));
    append(data, length);
    append("\r\n", 2);
}

void Http1ResponseWriter::sendFile(core::UniqueFd fd, std::uint64_t length) {
    if (length == 0) return;
    // evbuffer_add_file takes the descriptor (on success only) and sends with sendfile(2).
    if (evbuffer_add_file(out_, fd.get(), 0, static_cast<ev_off_t>(length)) == 0) fd.release();
    bytes_ += length;
}

void Http1ResponseWriter::endResponse() {
    if (framing_ == BodyFraming::Chunked) append("0\r\n\r\n", 5);
    framing_ = BodyFraming::None;
}

}  // namespace portico::http
