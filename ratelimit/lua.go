package ratelimit

import "github.com/redis/go-redis/v9"

// Every script takes the time as its last argument: unix µs, or "" for
// Redis's own clock (TIME), which is what production uses so that clock skew
// between pods does not matter. Config.Now fills it for simulations and
// tests. Times and rates are stored as decimal strings (string.format), never
// with tostring, whose %.14g would round a unix µs time.
//
// The adaptive state of a workspace is one hash, KEYS[1] of every script:
//
//	rate    effective rate in req/s; absent while it stands at the budget
//	cut     unix µs of the last decrease (absent: none yet)
//	acc     requests accepted since that decrease, in units of the
//	        effective rate (the measurement)
//	run     accepted requests towards the next increase
//	base    the rate the last decrease set
//	steps   increases since it
//	raised  unix µs of the last increase
//	streak  decreases in a row that saw no request accepted between them
//	cool    unix µs until which the workspace cools down

// clockLua sets now (unix µs) from the given argument, else Redis TIME.
const clockLua = `
local function clock(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// allowScript takes one request's token for a workspace.
//
// KEYS[1] is the adaptive state, KEYS[2] the GCRA key for all requests and
// KEYS[3] the GCRA key for non-critical (bulk) requests. ARGV: the budget
// (req/s), the burst at the budget, the critical share, "1" for a critical
// request, the time.
//
// The effective rate r is the state's rate capped at the budget; the burst
// scales with it (round(burst × r / budget), at least 1) and the bulk lane
// gets r×(1−share) with max(1, floor(burst×(1−share))). GCRA: a key holds the
// theoretical arrival time (TAT, unix µs) of the next request; a request at
// now is allowed when max(TAT, now) + interval − burst×interval <= now, and
// then moves TAT on by one interval. A non-critical request takes tokens
// only when both lanes allow it. Nothing is allowed while the workspace
// cools down.
//
// Returns {allowed (0|1), retry after in µs, cooling down (0|1), now (µs),
// effective rate in milli-req/s, ms since the last decrease (−1: none)}.
var allowScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
` + clockLua + `
local now = clock(ARGV[5])
local budget = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'rate', 'cool', 'cut')
local rate = tonumber(st[1]) or budget
if rate > budget then rate = budget end
local cool = tonumber(st[2]) or 0
local cut = tonumber(st[3]) or 0
local cutAge = -1
if cut > 0 then cutAge = math.floor((now - cut) / 1000) end
local milli = math.floor(rate * 1000)
if cool > now then
  return {0, cool - now, 1, now, milli, cutAge}
end

local burst = math.max(1, math.floor(tonumber(ARGV[2]) * rate / budget + 0.5))
local keep = 1 - tonumber(ARGV[3])

local function gcra(key, interval, b)
  local tat = now
  local v = redis.call('GET', key)
  if v then
    local stored = tonumber(v)
    if stored and stored > now then tat = stored end
  end
  local nextTat = tat + interval
  local allowAt = nextTat - interval * b
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

local interval = 1000000 / rate
local ok, wait, tat = gcra(KEYS[2], interval, burst)
local bulkOk, bulkWait, bulkTat = true, 0, 0
if ARGV[4] ~= '1' then
  bulkOk, bulkWait, bulkTat = gcra(KEYS[3], interval / keep, math.max(1, math.floor(burst * keep)))
end
if ok and bulkOk then
  store(KEYS[2], tat)
  if ARGV[4] ~= '1' then store(KEYS[3], bulkTat) end
  return {1, 0, 0, now, milli, cutAge}
end
return {0, math.ceil(math.max(wait, bulkWait)), 0, now, milli, cutAge}
`)

// throttleScript records a 429 for a workspace and applies the decrease.
//
// KEYS[1] is the adaptive state, KEYS[2] and KEYS[3] the GCRA keys of all
// and of bulk requests. ARGV: [1] budget (req/s), [2] when the throttled
// request's token was taken (unix µs), [3] Retry-After in ms (0: none), [4]
// β, the cut without a measurement, [5] γ, the share of the measured rate
// kept, [6] the minimum rate (req/s), [7] and [8] the shortest and longest
// measurement window (µs), [9] and [10] the base and maximum cool-down (ms),
// [11] a jitter factor in (0, 1], [12] the state's TTL (ms), [13] the burst
// at the budget, [14] the critical share, [15] the time.
//
// A 429 counts only when its request's token was taken after the last
// decrease: the requests sent before it already went out at the old rate, so
// however many of them (on however many replicas) come back 429, the
// workspace is cut once per round trip. A counted 429 measures the rate
// Customer.io accepted since the last decrease, ρ = acc / (now − cut), acc
// counting each accepted request in units of the effective rate (a bulk one
// as 1/(1 − critical share), since its lane may use only that part): a token
// bucket that was empty at the last 429 and is empty again now let exactly ρ
// through, so ρ is its rate (a lower bound when the bucket filled up
// meanwhile). With a measurement (the window between the shortest and
// longest, and something accepted) the rate becomes γ × min(ρ, rate);
// without one, β × rate and a cool-down of base×2^(streak−1) (capped, less up
// to 20% jitter) so the next 429 can measure. Never below the minimum rate.
// Customer.io's bucket is empty at a 429, so a counted one empties the GCRA
// buckets too: the next request waits one interval at the new rate. The
// cool-down is at least the Retry-After, and a longer one in place is kept.
//
// Returns {counted (0|1), rate before and after in milli-req/s, measured rate
// in milli-req/s (−1: none), cool-down in force in ms, streak}.
var throttleScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
` + clockLua + `
local now = clock(ARGV[15])
local budget = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'rate', 'cut', 'acc', 'streak', 'cool')
local rate = tonumber(st[1]) or budget
if rate > budget then rate = budget end
local cut = tonumber(st[2]) or 0
local acc = tonumber(st[3]) or 0
local streak = tonumber(st[4]) or 0
local cool = tonumber(st[5]) or 0
local before = rate
local counted, measured, coolFor = 0, -1, 0
if tonumber(ARGV[2]) > cut then
  counted = 1
  local dt = now - cut
  local newRate
  if cut > 0 and dt >= tonumber(ARGV[7]) and dt <= tonumber(ARGV[8]) and acc >= 1 then
    local rho = acc * 1000000 / dt
    measured = rho
    newRate = tonumber(ARGV[5]) * math.min(rho, rate)
    streak = 0
  else
    newRate = tonumber(ARGV[4]) * rate
    if acc >= 1 or cut == 0 or dt > tonumber(ARGV[8]) then streak = 1 else streak = streak + 1 end
    local backoff = tonumber(ARGV[9]) * (2 ^ math.min(streak - 1, 30))
    coolFor = math.floor(math.min(backoff, tonumber(ARGV[10])) * tonumber(ARGV[11]))
  end
  newRate = math.max(newRate, tonumber(ARGV[6]))
  if newRate > rate then newRate = rate end
  rate = newRate
  redis.call('HSET', KEYS[1], 'rate', string.format('%.6f', rate), 'cut', string.format('%.0f', now),
    'acc', 0, 'run', 0, 'streak', streak, 'base', string.format('%.6f', rate), 'steps', 0, 'raised', 0)
  local burst = math.max(1, math.floor(tonumber(ARGV[13]) * rate / budget + 0.5))
  local keep = 1 - tonumber(ARGV[14])
  local function empty(key, interval, b)
    local tat = now + interval * b
    local v = tonumber(redis.call('GET', key))
    if v and v > tat then return end
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  empty(KEYS[2], 1000000 / rate, burst)
  empty(KEYS[3], 1000000 / rate / keep, math.max(1, math.floor(burst * keep)))
end
local untilAt = math.max(now + coolFor * 1000, now + tonumber(ARGV[3]) * 1000)
if untilAt > cool then
  cool = untilAt
  redis.call('HSET', KEYS[1], 'cool', string.format('%.0f', cool))
end
redis.call('PEXPIRE', KEYS[1], ARGV[12])
local m = -1
if measured >= 0 then m = math.floor(measured * 1000) end
return {counted, math.floor(before * 1000), math.floor(rate * 1000), m,
  math.max(0, math.ceil((cool - now) / 1000)), streak}
`)

// succeedScript records an accepted request for a workspace and applies the
// increase.
//
// KEYS[1] is the adaptive state. ARGV: [1] budget (req/s), [2] the hold after
// a decrease (µs), [3] the run length at the budget (accepted requests per
// step), [4] the largest step (req/s), [5] the first step as a fraction of
// the rate the last decrease set, [6] the longest measurement window (µs),
// [7] the state's TTL (ms), [8] the request's weight in units of the
// effective rate (1 for a critical request, 1/(1 − critical share) for a
// bulk one), [9] when its token was taken (unix µs), [10] the time.
//
// Only a request whose token was taken after the last decrease counts: one
// let through before it was most likely accepted before the 429 that caused
// it, and its answer (or this call) merely came late, so counting it would
// overstate what Customer.io accepts since (leaving it out can only
// understate it). It counts (by its weight) towards the measurement while
// the decrease lies within the longest window.
//
// Below the budget, once the hold since the last decrease has passed, a run
// of accepted requests let through after the previous step raises the rate
// by one step: so each step is judged by requests sent at the rate it set,
// one step per round trip at most. The run is the run length scaled with
// rate/budget, at least 1. The k-th step since the decrease is k × the
// first step (ARGV[5] × the rate the decrease set), at most the largest
// step: gentle just above the limit the decrease measured, faster the
// longer no 429 comes. At the budget the rate field is removed (so a budget
// raised in the config applies at once).
//
// Returns {effective rate in milli-req/s, 1 when this call raised it, 1 when
// the raise reached the budget, ms since the last decrease (−1: none)}.
var succeedScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
` + clockLua + `
local now = clock(ARGV[10])
local budget = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'rate', 'cut', 'base', 'steps', 'raised')
local rate = tonumber(st[1])
local cut = tonumber(st[2]) or 0
local base = tonumber(st[3]) or 0
local steps = tonumber(st[4]) or 0
local raised = tonumber(st[5]) or 0
local tokAt = tonumber(ARGV[9])
local cutAge = -1
if cut > 0 then cutAge = math.floor((now - cut) / 1000) end
if tokAt <= cut then
  if rate == nil or rate > budget then rate = budget end
  return {math.floor(rate * 1000), 0, 0, cutAge}
end
local recent = cut > 0 and now - cut <= tonumber(ARGV[6])
if rate == nil or rate >= budget then
  if recent then
    redis.call('HINCRBYFLOAT', KEYS[1], 'acc', ARGV[8])
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
  end
  return {math.floor(budget * 1000), 0, 0, cutAge}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'acc', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if now - cut < tonumber(ARGV[2]) or tokAt <= raised then
  return {math.floor(rate * 1000), 0, 0, cutAge}
end
local run = redis.call('HINCRBY', KEYS[1], 'run', 1)
if run < math.max(1, math.floor(tonumber(ARGV[3]) * rate / budget + 0.5)) then
  return {math.floor(rate * 1000), 0, 0, cutAge}
end
steps = steps + 1
if base <= 0 then base = rate end
rate = rate + math.min(tonumber(ARGV[4]), steps * tonumber(ARGV[5]) * base)
if rate >= budget then
  redis.call('HDEL', KEYS[1], 'rate')
  redis.call('HSET', KEYS[1], 'run', 0)
  return {math.floor(budget * 1000), 1, 1, cutAge}
end
redis.call('HSET', KEYS[1], 'rate', string.format('%.6f', rate), 'run', 0, 'steps', steps,
  'raised', string.format('%.0f', now))
return {math.floor(rate * 1000), 1, 0, cutAge}
`)

// stateScript reads a workspace's adaptive state.
//
// KEYS[1] is the adaptive state. ARGV: the budget (req/s), the time.
//
// Returns {effective rate in milli-req/s, cool-down left in µs, ms since the
// last decrease (−1: none)}.
var stateScript = redis.NewScript(clockLua + `
local now = clock(ARGV[2])
local budget = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'rate', 'cool', 'cut')
local rate = tonumber(st[1]) or budget
if rate > budget then rate = budget end
local cool = tonumber(st[2]) or 0
local cut = tonumber(st[3]) or 0
local cutAge = -1
if cut > 0 then cutAge = math.floor((now - cut) / 1000) end
return {math.floor(rate * 1000), math.max(0, cool - now), cutAge}
`)
