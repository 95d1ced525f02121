package ratelimit

import "github.com/redis/go-redis/v9"

// allowScript takes one request's token for a workspace.
//
// KEYS[1] is the workspace's cool-down key, KEYS[2] its GCRA key for all
// requests and KEYS[3] its GCRA key for non-critical (bulk) requests.
// ARGV[1] and ARGV[2] are the emission interval (µs per request) and burst of
// the whole budget, ARGV[3] and ARGV[4] those of the bulk lane, ARGV[5] is "1"
// for a critical request (the bulk lane is then not consulted).
//
// GCRA: a key holds the theoretical arrival time (TAT, unix µs by Redis TIME)
// of the next request; a request at now is allowed when
// max(TAT, now) + interval - burst*interval <= now, and then moves TAT on by
// one interval. A non-critical request takes tokens only when both lanes
// allow it.
//
// Returns {allowed (0|1), retry after in µs, cooling down (0|1)}.
var allowScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local cd = redis.call('PTTL', KEYS[1])
if cd > 0 then
  return {0, cd * 1000, 1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function gcra(key, interval, burst)
  local tat = now
  local v = redis.call('GET', key)
  if v then
    local stored = tonumber(v)
    if stored and stored > now then tat = stored end
  end
  local nextTat = tat + interval
  local allowAt = nextTat - interval * burst
  if allowAt > now then
    return false, allowAt - now, nextTat
  end
  return true, 0, nextTat
end

local function store(key, tat)
  local ttl = math.ceil((tat - now) / 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', key, string.format('%.0f', tat), 'PX', ttl)
end

local ok, wait, tat = gcra(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
local bulkOk, bulkWait, bulkTat = true, 0, 0
if ARGV[5] ~= '1' then
  bulkOk, bulkWait, bulkTat = gcra(KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]))
end
if ok and bulkOk then
  store(KEYS[2], tat)
  if ARGV[5] ~= '1' then store(KEYS[3], bulkTat) end
  return {1, 0, 0}
end
return {0, math.ceil(math.max(wait, bulkWait)), 0}
`)

// throttleScript records a 429 for a workspace.
//
// KEYS[1] is the workspace's 429 streak counter, KEYS[2] its cool-down key.
// ARGV: the server's Retry-After in ms (0 when none), the base and maximum
// cool-down in ms, the streak TTL in ms and a jitter factor in (0, 1].
// The cool-down is max(Retry-After, min(base*2^(streak-1), max)*jitter); a
// longer cool-down already in place is kept.
//
// Returns {cool-down in force in ms, streak}.
var throttleScript = redis.NewScript(`
local streak = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local exp = streak - 1
if exp > 40 then exp = 40 end
local backoff = tonumber(ARGV[2]) * (2 ^ exp)
local max = tonumber(ARGV[3])
if backoff > max then backoff = max end
backoff = math.floor(backoff * tonumber(ARGV[5]))
local cool = math.max(tonumber(ARGV[1]), backoff, 1)
local left = redis.call('PTTL', KEYS[2])
if left >= cool then
  return {left, streak}
end
redis.call('SET', KEYS[2], streak, 'PX', cool)
return {cool, streak}
`)
