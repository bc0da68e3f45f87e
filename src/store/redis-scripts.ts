/**
 * Lua scripts of the Redis store, one per operation. Each takes every key of one admission
 * (or settlement), checks all of them, and only then writes: all-or-nothing in one round trip.
 *
 * Window layout: a string `<key>` holding the count, with PEXPIRE set at the window's first hit.
 * Budget layout: a hash `<key>` with fields `used`, `reserved` (sum of live reservations) and
 * `r:<reservationId>` (that reservation's amount), plus a sorted set `<key>:exp` of
 * reservation ids scored by their expiry, so purging expired ones costs O(log n + expired).
 * All are passed as KEYS (one per window, two per budget), so a script touches only declared
 * keys.
 */

const PURGE = `
local function purge(h, z, now)
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #ids == 0 then return end
  for _, id in ipairs(ids) do
    local amt = tonumber(redis.call('HGET', h, 'r:' .. id) or '0')
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('HINCRBY', h, 'reserved', -amt)
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end
`;

/**
 * One admission: hit every window and reserve in every budget, or do neither.
 * KEYS: one key per window, then hash, zset per budget.
 * ARGV: windowCount, reservationId, ttlMs, now, then limit, windowMs per window, then limit,
 * amount, minAmount, keyExpireAtMs per budget. A budget admits when its room is at least
 * max(1, minAmount), and reserves min(amount, room).
 * Returns { refusedKind (0 = admitted, 1 = window, 2 = budget), refusedIndex (1-based, 0 when
 * admitted), then count, pttl per window, then reserved, remaining per budget }.
 */
export const ADMIT = `${PURGE}
local nw = tonumber(ARGV[1])
local id, ttl, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local field = 'r:' .. id
local nb = (#KEYS - nw) / 2
local wa, ba = 4, 4 + 2 * nw -- ARGV offsets of the window pairs and budget quads
local kind, index = 0, 0

-- check every window (a key named twice counts twice) ...
local pending = {}
for i = 1, nw do
  local k = KEYS[i]
  local c = tonumber(redis.call('GET', k) or '0') + (pending[k] or 0)
  if kind == 0 and c >= tonumber(ARGV[wa + 2 * i - 1]) then kind, index = 1, i end
  pending[k] = (pending[k] or 0) + 1
end
-- ... and every budget, before writing anything
local room = {}
for j = 1, nb do
  local h = KEYS[nw + 2 * j - 1]
  purge(h, KEYS[nw + 2 * j], now)
  local v = redis.call('HMGET', h, 'used', 'reserved', field)
  -- a retried reservation id replaces its earlier amount rather than adding to it
  room[j] = tonumber(ARGV[ba + 4 * j - 3]) - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  -- never admitted on partial room: at least minAmount (and 1) must be left
  if kind == 0 and room[j] < math.max(1, tonumber(ARGV[ba + 4 * j - 1])) then kind, index = 2, j end
end

local out = { kind, index }
for i = 1, nw do
  local k = KEYS[i]
  local windowMs = tonumber(ARGV[wa + 2 * i])
  local c, pttl
  if kind == 0 then
    c = redis.call('INCR', k)
    pttl = redis.call('PTTL', k)
    -- the window starts at the first hit; a key without expiry (never expected) is repaired
    if pttl < 0 then
      redis.call('PEXPIRE', k, windowMs)
      pttl = windowMs
    end
  else
    c = tonumber(redis.call('GET', k) or '0')
    pttl = redis.call('PTTL', k)
    if pttl < 0 then pttl = windowMs end
  end
  out[#out + 1] = c
  out[#out + 1] = pttl
end
for j = 1, nb do
  local h, z = KEYS[nw + 2 * j - 1], KEYS[nw + 2 * j]
  local limit = tonumber(ARGV[ba + 4 * j - 3])
  local amt = 0
  if kind == 0 then
    amt = math.min(tonumber(ARGV[ba + 4 * j - 2]), room[j])
    local prev = tonumber(redis.call('HGET', h, field) or '0')
    redis.call('HSET', h, field, amt)
    redis.call('HINCRBY', h, 'reserved', amt - prev)
    redis.call('ZADD', z, now + ttl, id)
    redis.call('PEXPIREAT', h, ARGV[ba + 4 * j])
    redis.call('PEXPIREAT', z, ARGV[ba + 4 * j])
  end
  local v = redis.call('HMGET', h, 'used', 'reserved')
  out[#out + 1] = amt
  out[#out + 1] = math.max(0, limit - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0))
end
return out
`;

/**
 * Settle and release (every amount 0). KEYS: hash, zset per budget.
 * ARGV: reservationId, then actual amount, keyExpireAtMs per budget (tokens, or micro-dollars
 * in a cost budget). Returns used per budget.
 */
export const SETTLE = `
local field = 'r:' .. ARGV[1]
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local prev = redis.call('HGET', h, field)
  if prev then
    redis.call('HDEL', h, field)
    redis.call('HINCRBY', h, 'reserved', -tonumber(prev))
  end
  redis.call('ZREM', z, ARGV[1])
  local actual = tonumber(ARGV[2 * i]) or 0
  local used
  if actual > 0 then
    used = redis.call('HINCRBY', h, 'used', actual)
    redis.call('PEXPIREAT', h, ARGV[2 * i + 1])
  else
    used = tonumber(redis.call('HGET', h, 'used') or '0')
  end
  out[i] = used
end
return out
`;

/** KEYS: hash, zset. ARGV: now. Returns { used, reserved } after purging expired reservations. */
export const READ_BUDGET = `${PURGE}
purge(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local v = redis.call('HMGET', KEYS[1], 'used', 'reserved')
return { tonumber(v[1]) or 0, tonumber(v[2]) or 0 }
`;
