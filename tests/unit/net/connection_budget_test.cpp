// SPDX-License-Identifier: Apache-2.0
// limits.max_connections across workers: one count for the process (net::ConnectionBudget).
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "portico/net/connection_budget.h"

using namespace portico;

TEST_CASE("the budget admits exactly its limit, whoever takes", "[net][limits]") {
    net::ConnectionBudget budget(3);
    CHECK(budget.take());
    CHECK(budget.take());
    CHECK(budget.take());
    CHECK(budget.full());
    CHECK_FALSE(budget.take());  // refused: nothing taken
    CHECK(budget.open() == 3);
    budget.give();
    CHECK_FALSE(budget.full());
    CHECK(budget.take());
    CHECK_FALSE(budget.take());
}

TEST_CASE("a limit below the worker count holds for every worker together", "[net][limits]") {
    net::ConnectionBudget budget(1);
    std::atomic<int> admitted{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w)
        workers.emplace_back([&] {
            for (int i = 0; i < 1000; ++i)
                if (budget.take()) ++admitted;  // never given back: the first one only
        });
    for (auto& t : workers) t.join();
    CHECK(admitted == 1);
    CHECK(budget.open() == 1);
}

TEST_CASE("a reload's lower limit refuses until enough connections end", "[net][limits]") {
    net::ConnectionBudget budget(4);
    for (int i = 0; i < 4; ++i) REQUIRE(budget.take());
    budget.setLimit(2);
    CHECK_FALSE(budget.take());
    budget.give();
    budget.give();
    CHECK_FALSE(budget.take());  // 2 open, limit 2
    budget.give();
    CHECK(budget.take());
}
