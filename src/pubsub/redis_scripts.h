// SPDX-License-Identifier: Apache-2.0
#pragma once
// Private to src/pubsub: the Lua scripts of the Redis backplane (redis_backplane.h has the key
// layout). Each runs atomically in Redis; times come from Redis's own clock (TIME), never from a
// node's.

namespace portico::pubsub::scripts {

// KEYS: meta, stream[, idempotency]. ARGV: new epoch, payload, "t"|"b", sender, max entries
// (`history`, 0 = no history), TTL seconds, pub/sub channel, idempotency TTL seconds, "PUBLISH" or
// "SPUBLISH", max bytes (`history_bytes`), per-message overhead.
// The stream keeps at most `history` entries whose payloads plus the overhead each come to at
// most `history_bytes` (meta's `bytes` field is that sum): the oldest are trimmed, and a message
// larger than the bound alone is delivered but not kept, as in the in-process registry.
// Returns {seq, epoch, 1 if the idempotency key was seen (nothing done) else 0}.
inline constexpr const char* kPublish = R"lua(
if KEYS[3] then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local sp = string.find(seen, ' ', 1, true)
    return {tonumber(string.sub(seen, 1, sp - 1)), string.sub(seen, sp + 1), 1}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'bytes', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local overhead = tonumber(ARGV[11])
  redis.call('XADD', KEYS[2], '0-' .. seq, 'd', ARGV[2], 't', ARGV[3], 's', ARGV[4], 'ms', string.format('%d', ms))
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', #ARGV[2] + overhead)
  local len = redis.call('XLEN', KEYS[2])
  local maxbytes = tonumber(ARGV[10])
  -- Trim the oldest while over either bound, reading their sizes.
  local cut = nil
  local from = '-'
  local count = math.max(len - maxlen, 1)  -- usually the one entry that MAXLEN would drop
  while len > 0 and (len > maxlen or bytes > maxbytes) do
    local batch = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', count)
    count = 32
    if #batch == 0 then break end
    for _, e in ipairs(batch) do
      if len == 0 or (len <= maxlen and bytes <= maxbytes) then break end
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'd' then bytes = bytes - #f[i + 1] - overhead end
      end
      len = len - 1
      cut = e[1]
      from = '(' .. e[1]
    end
  end
  if cut then
    redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (tonumber(string.sub(cut, 3)) + 1))
    if len == 0 then bytes = 0 end
    redis.call('HSET', KEYS[1], 'bytes', bytes)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call(ARGV[9], ARGV[7], seq .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. '\n' .. ARGV[2])
if KEYS[3] then redis.call('SET', KEYS[3], seq .. ' ' .. epoch, 'EX', ARGV[8]) end
return {seq, epoch, 0}
)lua";

// KEYS: meta, stream. ARGV: after (seq), COUNT.
// Returns {epoch or "", last seq, Redis's time in ms, entries after `after` (XRANGE)}.
inline constexpr const char* kReplay = R"lua(
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local t = redis.call('TIME')
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {m[1] or '', tonumber(m[2] or '0'), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), entries}
)lua";

// KEYS: meta, stream. Returns {epoch or "", last seq, messages kept, oldest kept seq or 0}.
inline constexpr const char* kInfo = R"lua(
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local oldest = 0
if first[1] then oldest = tonumber(string.sub(first[1][1], 3)) end
return {m[1] or '', tonumber(m[2] or '0'), redis.call('XLEN', KEYS[2]), oldest}
)lua";

}  // namespace portico::pubsub::scripts
