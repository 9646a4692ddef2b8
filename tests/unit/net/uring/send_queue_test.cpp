// SPDX-License-Identifier: Apache-2.0
// SendQueue: the cost that backpressure counts (a pool buffer costs its whole size however few
// bytes it holds), partial sends, buffers handed back exactly once, a drained queue's bytes in
// order.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "portico/net/uring/send_queue.h"

using portico::net::uring::SendQueue;

TEST_CASE("a pool buffer costs its size, a heap chunk its capacity", "[uring][send_queue]") {
    SendQueue q;
    char buf[64] = "hello";
    q.pushBuffer(3, buf, 5);
    CHECK(q.cost() == 16384);
    CHECK(q.unsent() == 5);
    q.pushCopy("abc", 3);
    CHECK(q.cost() == 16384 + SendQueue::kCopyChunk);
    CHECK(q.unsent() == 8);
    q.pushCopy("", 0);  // nothing: no chunk
    q.pushCopy("de", 2);  // into the same heap chunk: no allocation, no cost
    CHECK(q.chunks() == 2);
    CHECK(q.cost() == 16384 + SendQueue::kCopyChunk);
    std::string big(SendQueue::kCopyChunk, 'b');
    q.pushCopy(big.data(), big.size());  // no room left: a chunk of its own size
    CHECK(q.chunks() == 3);
    CHECK(q.cost() == 16384 + 2 * SendQueue::kCopyChunk);
}

TEST_CASE("partial sends advance the front; a finished buffer comes back once", "[uring][send_queue]") {
    SendQueue q;
    char buf[11] = "0123456789";
    q.pushBuffer(7, buf, 10);
    q.pushCopy("xy", 2);
    CHECK(std::string(q.next(), q.nextLength()) == "0123456789");
    CHECK(q.sent(4) == SendQueue::kCopy);  // not all of it yet
    CHECK(std::string(q.next(), q.nextLength()) == "456789");
    CHECK(q.sent(6) == 7);  // the buffer goes back
    CHECK(q.cost() == SendQueue::kCopyChunk);
    CHECK(std::string(q.next(), q.nextLength()) == "xy");
    CHECK(q.sent(2) == SendQueue::kCopy);  // a copy has no buffer to give back
    CHECK(q.empty());
    CHECK(q.cost() == 0);
    CHECK(q.unsent() == 0);
}

TEST_CASE("drain keeps the unsent bytes in order and gives every buffer back", "[uring][send_queue]") {
    SendQueue q;
    char a[4] = "abc", b[4] = "def";
    q.pushCopy("<<", 2);
    q.pushBuffer(1, a, 3);
    q.pushBuffer(2, b, 3);
    CHECK(q.sent(1) == SendQueue::kCopy);  // "<" went
    std::string kept;
    std::vector<int> given;
    q.drain([&](const char* d, std::size_t n) { kept.append(d, n); }, [&](std::uint16_t id) { given.push_back(id); });
    CHECK(kept == "<abcdef");
    CHECK(given == std::vector<int>{1, 2});
    CHECK(q.empty());
    CHECK(q.cost() == 0);
}

TEST_CASE("unpoolFront copies a buffer's unsent bytes to the heap and gives the buffer back", "[uring][send_queue]") {
    SendQueue q;
    char buf[11] = "0123456789";
    q.pushBuffer(5, buf, 10);
    q.pushCopy("ab", 2);
    CHECK(q.sent(3) == SendQueue::kCopy);  // a partial send
    CHECK(q.unpoolFront() == 5);
    buf[5] = '!';  // the pool buffer is someone else's now: the queue must not read it
    CHECK(q.cost() == 7 + SendQueue::kCopyChunk);
    CHECK(q.unsent() == 9);
    CHECK(q.unpoolFront() == SendQueue::kCopy);  // a copy already
    CHECK(std::string(q.next(), q.nextLength()) == "3456789");
    CHECK(q.sent(7) == SendQueue::kCopy);
    CHECK(std::string(q.next(), q.nextLength()) == "ab");
    CHECK(q.sent(2) == SendQueue::kCopy);
    CHECK(q.empty());
    CHECK(q.cost() == 0);
}

TEST_CASE("borrowed bytes are sent from where they are, counted by length, and left in place by drain",
          "[uring][send_queue]") {
    SendQueue q;
    const char head[] = "HTTP/1.1 101";
    q.pushBorrowed(head, 12);
    q.pushCopy("frame", 5);
    CHECK(q.frontBorrowed());
    CHECK(q.cost() == 12 + SendQueue::kCopyChunk);
    CHECK(q.unpoolFront() == SendQueue::kCopy);  // not a pool buffer: stays borrowed
    CHECK(q.next() == head);
    CHECK(q.sent(4) == SendQueue::kCopy);  // a partial send
    CHECK(std::string(q.next(), q.nextLength()) == "/1.1 101");
    std::string kept;
    std::vector<int> given;
    q.drain([&](const char* data, std::size_t n) { kept.append(data, n); }, [&](std::uint16_t id) { given.push_back(id); });
    CHECK(kept == "frame");  // the borrowed rest is still in front of its owner's buffer
    CHECK(given.empty());
    CHECK(q.cost() == 0);

    q.pushBorrowed(head, 12);
    CHECK(q.sent(12) == SendQueue::kBorrowed);
    CHECK(q.empty());
    CHECK(q.cost() == 0);
    CHECK(q.unsent() == 0);
}

TEST_CASE("chunks behind the front keep their order as the front leaves", "[uring][send_queue]") {
    SendQueue q;
    char a[4] = "aaa", b[4] = "bbb";
    q.pushBuffer(1, a, 3);
    q.pushBuffer(2, b, 3);
    q.pushCopy("cc", 2);
    q.pushCopy("dd", 2);  // appended to the copy chunk
    CHECK(q.chunks() == 3);
    CHECK(q.sent(3) == 1);
    CHECK(std::string(q.next(), q.nextLength()) == "bbb");
    CHECK(q.sent(3) == 2);
    CHECK(std::string(q.next(), q.nextLength()) == "ccdd");
    q.pushBuffer(3, a, 3);
    CHECK(q.sent(4) == SendQueue::kCopy);
    CHECK(q.chunks() == 1);
    CHECK(q.sent(3) == 3);
    CHECK(q.empty());
    CHECK(q.chunks() == 0);
}
