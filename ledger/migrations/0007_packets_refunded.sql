-- A sender's refunds by when they were paid, for the yearly summary
-- (GET /api/v1/me/summary): without it, summing one year's refunds walks
-- every packet the sender ever sent. Only refunded packets are indexed.

create index packets_refunded on packets (sender_id, finished_at) include (refunded) where refunded > 0;
