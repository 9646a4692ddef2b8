// SPDX-License-Identifier: Apache-2.0
// core::Recycled: a freed object's storage is the next object's, up to the bound; a derived
// class of another size goes to the global allocator; objects on another thread use their own.
#include <catch2/catch.hpp>

#include <memory>
#include <thread>
#include <vector>

#include "portico/core/recycled.h"

namespace {

struct Kept : portico::core::Recycled<Kept, 2> {
    virtual ~Kept() = default;
    char bytes[40] = {};
};

struct Bigger final : Kept {
    char more[64] = {};
};

}  // namespace

TEST_CASE("recycled storage: the next object takes the last freed block, at most kKeep are kept", "[core][recycled]") {
    auto* first = new Kept;
    void* const where = first;
    delete first;
    auto* second = new Kept;
    CHECK(static_cast<void*>(second) == where);
    delete second;

    // Three freed: two kept, the third back to malloc; all three made again without trouble.
    std::vector<std::unique_ptr<Kept>> many;
    for (int i = 0; i < 3; ++i) many.push_back(std::make_unique<Kept>());
    many.clear();
    for (int i = 0; i < 3; ++i) many.push_back(std::make_unique<Kept>());
    many.clear();
}

TEST_CASE("recycled storage: a derived class of another size is not kept", "[core][recycled]") {
    std::unique_ptr<Kept> bigger = std::make_unique<Bigger>();
    bigger.reset();  // through the base's virtual destructor: the size is Bigger's
    auto* plain = new Kept;
    delete plain;
}

TEST_CASE("recycled storage: each thread keeps its own blocks and frees them when it ends", "[core][recycled]") {
    std::thread worker([] {
        auto* object = new Kept;
        delete object;  // kept by this thread, freed at its exit (LeakSanitizer would see it otherwise)
    });
    worker.join();
    auto* here = new Kept;
    delete here;
}
