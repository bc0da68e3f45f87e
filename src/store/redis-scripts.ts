/**
 * Lua scripts of the Redis store, one per operation. Each takes every key of one admission
 * (or settlement), checks all of them, and only then writes: all-or-nothing in one round trip.
 *
 * Budget layout: a hash `<key>` with fields `used`, `reserved` (sum of live reservations) and
 * `r:<reservationId>` (that reservation's amount), plus a sorted set `<key>:exp` of
 * reservation ids scored by their expiry, so purging expired ones costs O(log n + expired).
 * Both are passed as KEYS, two per budget, so a script touches only declared keys.
 */

/**
 * KEYS: one window key per hit. ARGV: limit, windowMs per hit.
 * Returns { deniedIndex (1-based, 0 = allowed), then count, pttl per hit }.
 */
export const HIT_WINDOWS = `
local n = #KEYS
local pending = {}
local denied = 0
for i = 1, n do
  local k = KEYS[i]
  local c = tonumber(redis.call('GET', k) or '0') + (pending[k] or 0)
  if denied == 0 and c >= tonumber(ARGV[2 * i - 1]) then denied = i end
  pending[k] = (pending[k] or 0) + 1
end
local out = { denied }
for i = 1, n do
  local k = KEYS[i]
  local windowMs = tonumber(ARGV[2 * i])
  local c, ttl
  if denied == 0 then
    c = redis.call('INCR', k)
    ttl = redis.call('PTTL', k)
    -- the window starts at the first hit; a key without expiry (never expected) is repaired
    if ttl < 0 then
      redis.call('PEXPIRE', k, windowMs)
      ttl = windowMs
    end
  else
    c = tonumber(redis.call('GET', k) or '0')
    ttl = redis.call('PTTL', k)
    if ttl < 0 then ttl = windowMs end
  end
  out[#out + 1] = c
  out[#out + 1] = ttl
end
return out
`;

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
 * KEYS: hash, zset per budget. ARGV: reservationId, ttlMs, now, then limit, amount,
 * keyExpireAtMs per budget. Returns { deniedIndex (1-based, 0 = allowed), then reserved,
 * remaining per budget }.
 */
export const RESERVE = `${PURGE}
local id, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local field = 'r:' .. id
local n = #KEYS / 2
local room = {}
local denied = 0
for i = 1, n do
  local h = KEYS[2 * i - 1]
  purge(h, KEYS[2 * i], now)
  local v = redis.call('HMGET', h, 'used', 'reserved', field)
  -- a retried reservation id replaces its earlier amount rather than adding to it
  room[i] = tonumber(ARGV[3 * i + 1]) - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  if denied == 0 and room[i] <= 0 then denied = i end
end
local out = { denied }
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amt = 0
  if denied == 0 then
    amt = math.min(tonumber(ARGV[3 * i + 2]), room[i])
    local prev = tonumber(redis.call('HGET', h, field) or '0')
    redis.call('HSET', h, field, amt)
    redis.call('HINCRBY', h, 'reserved', amt - prev)
    redis.call('ZADD', z, now + ttl, id)
    redis.call('PEXPIREAT', h, ARGV[3 * i + 3])
    redis.call('PEXPIREAT', z, ARGV[3 * i + 3])
  end
  local v = redis.call('HMGET', h, 'used', 'reserved')
  out[#out + 1] = amt
  out[#out + 1] = math.max(0, tonumber(ARGV[3 * i + 1]) - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0))
end
return out
`;

/**
 * Settle (actual > 0) and release (actual = 0). KEYS: hash, zset per budget.
 * ARGV: reservationId, actualTokens, then keyExpireAtMs per budget. Returns used per budget.
 */
export const SETTLE = `
local field = 'r:' .. ARGV[1]
local actual = tonumber(ARGV[2])
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
  local used
  if actual > 0 then
    used = redis.call('HINCRBY', h, 'used', actual)
    redis.call('PEXPIREAT', h, ARGV[i + 2])
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
