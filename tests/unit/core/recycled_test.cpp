// SPDX-License-Identifier: Apache-2.0
// core::Recycled: a freed object's storage is the next object's, up to the bound; a derived
// class of another size goes to the global allocator; objects on another thread use their own.
#include <catch2/catch.hpp>

#include <algorithm>
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
    if (!Kept::kKeeps) return;  // an ASan build keeps nothing, so that its quarantine sees every block
    auto* first = new Kept;
    void* const where = first;
    delete first;
    CHECK(Kept::keptCount() == 1);
    auto* second = new Kept;
    CHECK(static_cast<void*>(second) == where);
    CHECK(Kept::keptCount() == 0);
    delete second;

    // Three freed: two kept, the third back to malloc; all three made again without trouble.
    std::vector<std::unique_ptr<Kept>> many;
    for (int i = 0; i < 3; ++i) many.push_back(std::make_unique<Kept>());
    many.clear();
    CHECK(Kept::keptCount() == 2);
    for (int i = 0; i < 3; ++i) many.push_back(std::make_unique<Kept>());
    CHECK(Kept::keptCount() == 0);
    many.clear();
}

TEST_CASE("recycled storage: a derived class of another size is not kept", "[core][recycled]") {
    const std::size_t before = Kept::keptCount();
    std::unique_ptr<Kept> bigger = std::make_unique<Bigger>();
    bigger.reset();  // through the base's virtual destructor: the size is Bigger's
    CHECK(Kept::keptCount() == before);
    auto* plain = new Kept;
    delete plain;
    CHECK(Kept::keptCount() == (Kept::kKeeps ? std::min<std::size_t>(before + 1, 2) : 0));  // kKeep is 2
}

TEST_CASE("recycled storage: each thread keeps its own blocks and frees them when it ends", "[core][recycled]") {
    const std::size_t here_before = Kept::keptCount();
    std::size_t kept_there = 99;
    std::thread worker([&kept_there] {
        auto* object = new Kept;
        delete object;  // kept by this thread, freed at its exit (LeakSanitizer would see it otherwise)
        kept_there = Kept::keptCount();
    });
    worker.join();
    CHECK(kept_there == (Kept::kKeeps ? 1u : 0u));
    CHECK(Kept::keptCount() == here_before);
    auto* here = new Kept;
    delete here;
}
