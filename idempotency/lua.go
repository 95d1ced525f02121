package idempotency

import "github.com/redis/go-redis/v9"

// LuaLib defines the Lua functions every script of the store (and the
// enqueue script of package taskq, which includes it) shares:
//
//   - cioq_fmt(n): n as an integer string (stamps exceed Lua's %.14g).
//   - cioq_stamp_of(v): the stamp that starts "<stamp>:...", or nil.
//   - cioq_stamps(key, n): the first of n new stamps of a workspace: unix µs
//     on Redis's clock, strictly above the last one given (kept in key), so
//     stamps are unique and increasing even if the clock steps back.
//   - cioq_register(p, ord, idn, kind, stamp, ts, opid, ttl): registers a
//     queued op for its person (order registrations, tombstone, suppression).
//   - cioq_deregister(p, ord, idn, kind, ts, opid): removes a registration.
//   - cioq_fly_dec(p, now): one op of the person less in flight.
//
// The person hash (PersonKey) holds:
//
//	t      "<stamp>:<d|s>:<op id>"  the newest delete/suppress (the tombstone)
//	u      "<stamp>:<op id>"        the first unsuppress after t
//	b      pending barriers (entries in the order set)
//	i<ts>  pending identifies of timestamp second ts
//	f      "<count>:<until ms>"     droppable ops in flight (claimed), valid until
//
// The order set (OrderKey) holds pending barriers, member "<kind>:<op id>",
// score the stamp; an identify set (IdentifyKey) holds "i:<op id>".
const LuaLib = `
local function cioq_fmt(n) return string.format('%.0f', n) end
local function cioq_stamp_of(v)
  if not v then return nil end
  return tonumber(string.match(v, '^(%d+)'))
end
local function cioq_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function cioq_stamps(key, n)
  local t = redis.call('TIME')
  local base = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', key) or '0')
  if base <= last then base = last + 1 end
  redis.call('SET', key, cioq_fmt(base + n - 1))
  return base
end
local cioq_barrier = {x = true, b = true, d = true, s = true, u = true}
local cioq_droppable = {e = true, i = true, x = true}
local function cioq_register(p, ord, idn, kind, stamp, ts, opid, ttl)
  if kind == 'i' then
    if redis.call('ZADD', idn, 'NX', cioq_fmt(stamp), 'i:' .. opid) == 1 then
      redis.call('HINCRBY', p, 'i' .. ts, 1)
    end
    redis.call('PEXPIRE', idn, ttl)
    redis.call('PEXPIRE', p, ttl)
  elseif cioq_barrier[kind] then
    if redis.call('ZADD', ord, 'NX', cioq_fmt(stamp), kind .. ':' .. opid) == 1 then
      redis.call('HINCRBY', p, 'b', 1)
    end
    redis.call('PEXPIRE', ord, ttl)
    local field = nil
    local val = nil
    if kind == 'd' or kind == 's' then
      field, val = 't', cioq_fmt(stamp) .. ':' .. kind .. ':' .. opid
    elseif kind == 'u' then
      field, val = 'u', cioq_fmt(stamp) .. ':' .. opid
    end
    if field == 't' then
      local cur = cioq_stamp_of(redis.call('HGET', p, 't'))
      if not cur or cur < stamp then redis.call('HSET', p, 't', val) end
    elseif field == 'u' then
      -- u is the FIRST unsuppress after the newest delete/suppress: an op
      -- is in a suppressed window when no unsuppress came between the
      -- suppress and it.
      local cur = cioq_stamp_of(redis.call('HGET', p, 'u'))
      local t = cioq_stamp_of(redis.call('HGET', p, 't'))
      if not cur or (t and cur < t) then redis.call('HSET', p, 'u', val) end
    end
    redis.call('PEXPIRE', p, ttl)
  end
end
local function cioq_deregister(p, ord, idn, kind, ts, opid)
  if kind == 'i' then
    if redis.call('ZREM', idn, 'i:' .. opid) == 1 then
      if redis.call('HINCRBY', p, 'i' .. ts, -1) <= 0 then redis.call('HDEL', p, 'i' .. ts) end
    end
  elseif cioq_barrier[kind] then
    if redis.call('ZREM', ord, kind .. ':' .. opid) == 1 then
      if redis.call('HINCRBY', p, 'b', -1) <= 0 then redis.call('HDEL', p, 'b') end
    end
  end
end
local function cioq_fly(v, now)
  if not v then return 0, 0 end
  local c, u = string.match(v, '^(%d+):(%d+)$')
  if not c or tonumber(u) <= now then return 0, 0 end
  return tonumber(c), tonumber(u)
end
local function cioq_fly_dec(p, now)
  local c, u = cioq_fly(redis.call('HGET', p, 'f'), now)
  if c > 1 then
    redis.call('HSET', p, 'f', (c - 1) .. ':' .. cioq_fmt(u))
  else
    redis.call('HDEL', p, 'f')
  end
end
`

// claimScript checks a batch of items, in the order given (the caller
// sorts them by stamp).
//
// KEYS: for item i (1-based) KEYS[4i-3] is its op key, KEYS[4i-2] its person
// key, KEYS[4i-1] its person's order set and KEYS[4i] its identify set (the
// order set again when it is not an identify; all four are the op key when
// the item has no person).
// ARGV[1] is this store's token, ARGV[2] the claim TTL in ms; for item i
// ARGV[4i-1..4i+2] are its kind, stamp, timestamp and op id.
//
// Returns one entry per item: {1} send, {2} done, {3, tombstone} dropped by
// a newer delete/suppress, {4} claimed elsewhere, {5, blocker} waiting for
// an older op ("<stamp>:<kind>:<op id>", or "f" for ops in flight), {6,
// tombstone} dropped because it was queued while its person was suppressed.
var claimScript = redis.NewScript(LuaLib + `
local token = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = cioq_now_ms()
local n = #KEYS / 4
local out = {}
local granted = {}
local flylocal = {}
local function first_blocker(z, stamp, tstamp)
  local es = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cioq_fmt(stamp), 'WITHSCORES', 'LIMIT', 0, 256)
  for j = 1, #es, 2 do
    local m = es[j]
    local sc = tonumber(es[j+1])
    local k = string.sub(m, 1, 1)
    local id = string.sub(m, 3)
    local doomed = cioq_droppable[k] and tstamp and tstamp > sc
    if not granted[id] and not doomed then
      return cioq_fmt(sc) .. ':' .. m
    end
  end
  if #es >= 512 then return '0:?:' end
  return nil
end
for i = 1, n do
  local opk, pk, ordk, idnk = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]
  local kind = ARGV[4*i-1]
  local stamp = tonumber(ARGV[4*i])
  local ts = ARGV[4*i+1]
  local opid = ARGV[4*i+2]
  local v = redis.call('GET', opk)
  if v == 'd' then
    out[i] = {2}
    if kind ~= 'n' then cioq_deregister(pk, ordk, idnk, kind, ts, opid) end
  elseif v then
    out[i] = {4}
  else
    local verdict = nil
    local h = {}
    if kind ~= 'n' then
      h = redis.call('HMGET', pk, 't', 'u', 'f', 'b', 'i' .. ts)
      local tstamp = cioq_stamp_of(h[1])
      if cioq_droppable[kind] and tstamp then
        if tstamp > stamp then
          verdict = {3, h[1]}
        elseif string.sub(h[1], #cioq_fmt(tstamp) + 2, #cioq_fmt(tstamp) + 2) == 's' then
          local us = cioq_stamp_of(h[2])
          if not us or us < tstamp or us > stamp then verdict = {6, h[1]} end
        end
        if verdict then cioq_deregister(pk, ordk, idnk, kind, ts, opid) end
      end
      if not verdict then
        local blocker = nil
        if tonumber(h[4] or '0') > 0 then blocker = first_blocker(ordk, stamp, tstamp) end
        if not blocker and kind == 'i' and tonumber(h[5] or '0') > 1 then
          blocker = first_blocker(idnk, stamp, tstamp)
        end
        if not blocker and (kind == 'd' or kind == 's') then
          local c = cioq_fly(h[3], now)
          if c - (flylocal[pk] or 0) > 0 then blocker = 'f' end
        end
        if blocker then verdict = {5, blocker} end
      end
    end
    if not verdict then
      redis.call('SET', opk, 'c:' .. token, 'PX', ttl)
      granted[opid] = true
      if cioq_droppable[kind] then
        -- h[3] is fresh: an earlier op of this person in this call wrote f
        -- before this op's HMGET.
        local c = cioq_fly(h[3], now)
        redis.call('HSET', pk, 'f', (c + 1) .. ':' .. cioq_fmt(now + ttl))
        if not (h[1] or h[2] or h[3] or h[4] or h[5]) and redis.call('PTTL', pk) < 0 then
          redis.call('PEXPIRE', pk, 2 * ttl)
        end
        flylocal[pk] = (flylocal[pk] or 0) + 1
      end
      verdict = {1}
    end
    out[i] = verdict
  end
end
return out
`)

// settleScript settles items after a send. ARGV[1] is this store's token,
// ARGV[2] the mode: "d" delivered (done-marker with TTL ARGV[3] s, claim and
// registration gone), "r" released (claim gone, the op stays registered
// for its retry), "f" forgotten (dead-lettered, or an orphan whose task is
// archived or gone: claim and registration gone, no done-marker, and its
// tombstone, or suppression lift, removed when this op wrote it),
// "e" extended (this store's claims live ARGV[3] ms more).
// KEYS are as for claimScript (4 per item); for item i ARGV[3i+1..3i+3] are
// its kind, timestamp and op id. A claim is released, and the in-flight
// count of its person lowered, only when this store holds it. Returns the
// number of items.
var settleScript = redis.NewScript(LuaLib + `
local token = ARGV[1]
local mode = ARGV[2]
local ttl = ARGV[3]
local now = cioq_now_ms()
local n = #KEYS / 4
for i = 1, n do
  local opk, pk, ordk, idnk = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]
  local kind, ts, opid = ARGV[3*i+1], ARGV[3*i+2], ARGV[3*i+3]
  local mine = redis.call('GET', opk) == 'c:' .. token
  if mode == 'e' then
    if mine then redis.call('PEXPIRE', opk, ttl) end
  elseif mode == 'd' then
    redis.call('SET', opk, 'd', 'EX', ttl)
  elseif mine then
    redis.call('DEL', opk)
  end
  if kind ~= 'n' and mode ~= 'e' then
    if mine and cioq_droppable[kind] then cioq_fly_dec(pk, now) end
    if mode ~= 'r' then cioq_deregister(pk, ordk, idnk, kind, ts, opid) end
    if mode == 'f' and (kind == 'd' or kind == 's' or kind == 'u') then
      local f = 't'
      if kind == 'u' then f = 'u' end
      local v = redis.call('HGET', pk, f)
      if v and string.sub(v, -(#opid + 1)) == ':' .. opid then redis.call('HDEL', pk, f) end
    end
  end
end
return n
`)

// registerScript stamps and registers ops without queueing them (the first
// half of an enqueue on Redis Cluster, where the queue keys live in other
// slots; package taskq writes the tasks next). KEYS[1] is the workspace's
// stamp key, then 3 keys per op (person, order, identify); ARGV[1] is the
// registration TTL in ms, then per op: stamp ("0": give a new one), kind,
// timestamp, op id. Returns the stamps given, in order.
var registerScript = redis.NewScript(LuaLib + `
local ttl = ARGV[1]
local n = (#KEYS - 1) / 3
local fresh = 0
for i = 1, n do
  if ARGV[4*i-2] == '0' then fresh = fresh + 1 end
end
local base = 0
if fresh > 0 then base = cioq_stamps(KEYS[1], fresh) end
local out = {}
local j = 0
for i = 1, n do
  local stamp = tonumber(ARGV[4*i-2])
  if stamp == 0 then stamp = base + j; j = j + 1 end
  local kind = ARGV[4*i-1]
  if kind ~= 'n' then
    cioq_register(KEYS[3*i-1], KEYS[3*i], KEYS[3*i+1], kind, stamp, ARGV[4*i], ARGV[4*i+1], ttl)
  end
  out[i] = cioq_fmt(stamp)
end
return out
`)

// reserveScript hands out ARGV[1] stamps of the workspace whose stamp key is
// KEYS[1] and returns the first, as a string.
var reserveScript = redis.NewScript(LuaLib + `
return cioq_fmt(cioq_stamps(KEYS[1], tonumber(ARGV[1])))
`)
