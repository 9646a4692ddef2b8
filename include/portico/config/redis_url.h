// SPDX-License-Identifier: Apache-2.0
#pragma once
// The `pubsub.backplane.redis` URL: redis://[user[:password]@]host[:port][/db] or
// unix://[:password@]/path/to/redis.sock[?db=N].

#include <string>
#include <string_view>

#include "portico/config/config.h"

namespace portico::config {

// Fills `out` from `url`. False with a reason in `error` for anything else (another scheme, no
// host, a port outside 1-65535, a db that is not a number).
bool parseRedisUrl(std::string_view url, RedisAddress& out, std::string& error);

// `url` with its password replaced by "***", for logs and status.
std::string redactRedisUrl(std::string_view url);

}  // namespace portico::config
