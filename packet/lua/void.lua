#!lua
-- The sweeper's decision on a packet stuck in 'pending': if the sender was
-- debited, say so; if not, record a tombstone so that a late debit for this
-- packet is refused. Either way the answer is final.
-- KEYS[1] ledger hash; ARGV[1] packet id
-- Returns the debited amount, or 'void'.
local field = 'd:' .. ARGV[1]
redis.call('HSETNX', KEYS[1], field, 'void')
return redis.call('HGET', KEYS[1], field)
