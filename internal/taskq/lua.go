package taskq

import (
	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/idempotency"
)

// enqueueScript writes tasks into asynq's structures exactly as asynq's
// client does (the task hash with msg, state and pending_since, then LPUSH
// to the queue's pending list; or state "scheduled" and ZADD to its
// scheduled set), and in the same atomic step stamps and registers the ops
// they carry (idempotency.LuaLib).
//
// KEYS[1] is the workspace's stamp key (any key of the call's slot when
// ARGV[2] is "0"); then 2 keys per task: its task key and its pending list
// or scheduled set; then 3 keys per op (person, order, identify).
//
// ARGV[1] is the registration TTL in ms, ARGV[2] "1" to stamp and register
// here ("0": the ops carry given stamps and were registered already),
// ARGV[3] the number of tasks; then per task 5 args: the message, the task
// id, "p" (pending) or "s" (scheduled), the scheduled unix time, the number
// of ops; then per op 5 args: the offset of its stamp in the message (-1:
// none), its stamp ("0": a new one), kind, timestamp, op id.
//
// A task whose key exists (or that repeats a task id of the call) is not
// written and its ops are not registered. Returns {first new stamp, then
// 1 (written) or 0 (duplicate) per task}.
var enqueueScript = redis.NewScript(idempotency.LuaLib + `
local ttl = ARGV[1]
local register = ARGV[2] == '1'
local ntasks = tonumber(ARGV[3])
local function be8(n)
  local b = {}
  for i = 8, 1, -1 do
    b[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
end
-- pass 1: which tasks are new, and how many fresh stamps they need
local fresh = 0
local new = {}
local seen = {}
local a = 4
local opa = 4 + 5 * ntasks
local k = 2 + 2 * ntasks
local oa = opa
for t = 1, ntasks do
  local id = ARGV[a+1]
  local nops = tonumber(ARGV[a+4])
  local isnew = not seen[id] and redis.call('EXISTS', KEYS[2*t]) == 0
  seen[id] = true
  new[t] = isnew
  if isnew then
    for o = 0, nops - 1 do
      if ARGV[oa + 5*o + 1] == '0' then fresh = fresh + 1 end
    end
  end
  oa = oa + 5 * nops
  a = a + 5
end
local base = 0
if fresh > 0 then base = cioq_stamps(KEYS[1], fresh) end
-- pass 2: stamp, register and write the new tasks
local tm = redis.call('TIME')
local since = tm[1] .. string.format('%06d', tonumber(tm[2])) .. '000'
local out = {base}
local j = 0
a = 4
oa = opa
local ok = 2 + 2 * ntasks
for t = 1, ntasks do
  local msg = ARGV[a]
  local id = ARGV[a+1]
  local mode = ARGV[a+2]
  local score = ARGV[a+3]
  local nops = tonumber(ARGV[a+4])
  if new[t] then
    local parts = {}
    local pos = 1
    for o = 0, nops - 1 do
      local off = tonumber(ARGV[oa + 5*o])
      local stamp = tonumber(ARGV[oa + 5*o + 1])
      if stamp == 0 then
        stamp = base + j
        j = j + 1
      end
      if off >= 0 then
        parts[#parts+1] = string.sub(msg, pos, off)
        parts[#parts+1] = be8(stamp)
        pos = off + 9
      end
      local kind = ARGV[oa + 5*o + 2]
      if register and kind ~= 'n' then
        local p = ok + 3*o
        cioq_register(KEYS[p], KEYS[p+1], KEYS[p+2], kind, stamp, ARGV[oa + 5*o + 3], ARGV[oa + 5*o + 4], ttl)
      end
    end
    if pos > 1 then
      parts[#parts+1] = string.sub(msg, pos)
      msg = table.concat(parts)
    end
    if mode == 's' then
      redis.call('HSET', KEYS[2*t], 'msg', msg, 'state', 'scheduled')
      redis.call('ZADD', KEYS[2*t+1], score, id)
    else
      redis.call('HSET', KEYS[2*t], 'msg', msg, 'state', 'pending', 'pending_since', since)
      redis.call('LPUSH', KEYS[2*t+1], id)
    end
    out[t+1] = 1
  else
    out[t+1] = 0
  end
  oa = oa + 5 * nops
  ok = ok + 3 * nops
  a = a + 5
end
return out
`)
