package idempotency

import "github.com/redis/go-redis/v9"

// claimScript checks a batch of items.
//
// KEYS: for item i (1-based) KEYS[3i-2] is its done key, KEYS[3i-1] its claim
// key and KEYS[3i] its tombstone key (the claim key again when the item has
// no tombstone to check, so every key stays in the workspace's slot).
// ARGV[1] is this store's token, ARGV[2] the claim TTL in ms; for item i
// ARGV[2i+1] is 1 when it is droppable and ARGV[2i+2] its enqueue time in
// unix microseconds.
//
// Returns one entry per item: 1 send, 2 done, 4 claimed, or the tombstone's
// value (a string) when the item is dropped by it.
var claimScript = redis.NewScript(`
local token = ARGV[1]
local ttl = ARGV[2]
local n = #KEYS / 3
local out = {}
local tombs = {}
for i = 1, n do
  local done = KEYS[3*i-2]
  local claim = KEYS[3*i-1]
  local tomb = KEYS[3*i]
  if redis.call('EXISTS', done) == 1 then
    out[i] = 2
  else
    local dropped = false
    if ARGV[2*i+1] == '1' then
      local v = tombs[tomb]
      if v == nil then
        v = redis.call('GET', tomb) or false
        tombs[tomb] = v
      end
      if v then
        local at = tonumber(string.match(v, '^(-?%d+)'))
        if at and at > tonumber(ARGV[2*i+2]) then
          out[i] = v
          dropped = true
        end
      end
    end
    if not dropped then
      if redis.call('SET', claim, token, 'NX', 'PX', ttl) then
        out[i] = 1
      else
        out[i] = 4
      end
    end
  end
end
return out
`)

// markDoneScript writes done-markers and drops this store's claims.
//
// KEYS[2i-1] is item i's done key, KEYS[2i] its claim key. ARGV[1] is this
// store's token, ARGV[2] the done TTL in seconds. Returns how many markers
// were new.
var markDoneScript = redis.NewScript(`
local token = ARGV[1]
local ttl = ARGV[2]
local created = 0
for i = 1, #KEYS / 2 do
  if redis.call('SET', KEYS[2*i-1], '1', 'NX', 'EX', ttl) then
    created = created + 1
  end
  if redis.call('GET', KEYS[2*i]) == token then
    redis.call('DEL', KEYS[2*i])
  end
end
return created
`)

// releaseScript deletes the claims in KEYS that hold this store's token
// (ARGV[1]). Returns how many were deleted.
var releaseScript = redis.NewScript(`
local token = ARGV[1]
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == token then
    deleted = deleted + redis.call('DEL', KEYS[i])
  end
end
return deleted
`)

// tombstoneScript stores ARGV[2] ("<unix µs>:<op id>") in KEYS[1] with a TTL
// of ARGV[3] ms unless the tombstone there is as new or newer than ARGV[1]
// (unix µs). Returns 1 when written.
var tombstoneScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local at = tonumber(string.match(v, '^(-?%d+)'))
  if at and at >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)
