#!lua
-- Credit a wallet with new money (a guest's starting balance, an operator's
-- credit) and count it as funded, so the audit can add up all money in.
-- KEYS[1] wallet hash, KEYS[2] ledger hash (idempotency records)
-- ARGV[1] amount in fen (decimal string, > 0), ARGV[2] idempotency ref ('' = none)
-- Returns {1, balance} when funded, {0, balance} when ref was already used.
-- Amounts stay strings: Redis does the int64 arithmetic, never Lua numbers.
if ARGV[2] ~= '' then
  local field = 'f:' .. ARGV[2]
  if redis.call('HSETNX', KEYS[2], field, ARGV[1]) == 0 then
    return {0, redis.call('HGET', KEYS[1], 'balance') or '0'}
  end
end
redis.call('HINCRBY', KEYS[1], 'funded', ARGV[1])
return {1, redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])}
