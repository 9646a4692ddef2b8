// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/observe: the pub/sub registry's figures in the two renderings of metrics.cpp.

#include <string>

#include "portico/observe/metrics.h"

namespace portico::observe {

// Appends the pub/sub families (HELP, TYPE and samples) in the Prometheus text format.
void renderPubSubPrometheus(std::string& out, const PubSubStats& s);
// The members to append inside the status JSON's "pubsub" object, each preceded by a comma.
std::string renderPubSubJson(const PubSubStats& s);

}  // namespace portico::observe
