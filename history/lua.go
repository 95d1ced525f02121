package history

import "github.com/redis/go-redis/v9"

// appendScript appends events to op histories and seeds new ones.
//
// For record i (1-based) KEYS[2i-1] is its history key and KEYS[2i] its
// person index key (the history key again when it has no person).
// ARGV[1] is the TTL in ms, ARGV[2] MaxEvents, ARGV[3] MaxPersonOps, then per
// record: the seed event ("" for none), the op id, the enqueue time in ms
// (the person index score), the number of events n, then n events.
//
// A seed is written first (and the op added to its person index) only when
// the history does not exist yet: the events are pushed first, and a list
// as long as the events just pushed is a new one, so an existing history
// costs no extra lookup. When a history holds more than MaxEvents, the
// oldest events after the first are trimmed. Returns how many histories were
// seeded.
var appendScript = redis.NewScript(`
local ttl = ARGV[1]
local maxEvents = tonumber(ARGV[2])
local maxPerson = tonumber(ARGV[3])
local a = 4
local seeded = 0
for i = 1, #KEYS / 2 do
  local key = KEYS[2*i-1]
  local pkey = KEYS[2*i]
  local seed = ARGV[a]
  local op = ARGV[a+1]
  local score = ARGV[a+2]
  local n = tonumber(ARGV[a+3])
  a = a + 4
  local new = false
  local len = 0
  if n > 0 then
    len = redis.call('RPUSH', key, unpack(ARGV, a, a + n - 1))
    new = len == n
  elseif seed ~= '' then
    new = redis.call('EXISTS', key) == 0
  end
  a = a + n
  if new and seed ~= '' then
    len = redis.call('LPUSH', key, seed)
    seeded = seeded + 1
    if pkey ~= key then
      redis.call('ZADD', pkey, score, op)
      redis.call('ZREMRANGEBYRANK', pkey, 0, -(maxPerson + 1))
      redis.call('PEXPIRE', pkey, ttl)
    end
  end
  if len > maxEvents then
    local first = redis.call('LINDEX', key, 0)
    redis.call('LTRIM', key, len - maxEvents + 1, -1)
    redis.call('LPUSH', key, first)
  end
  redis.call('PEXPIRE', key, ttl)
end
return seeded
`)
