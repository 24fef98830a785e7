-- Webhook events waiting to be delivered. Each row is written in the same
-- transaction as the ledger change it reports, so an event exists exactly
-- when its change committed; dispatchers on every instance lease due rows
-- (FOR UPDATE SKIP LOCKED), POST them, and delete them once acknowledged.

create table webhook_outbox (
    id         text primary key,                   -- the event id, e.g. claim.settled:<packet>:<seq>
    type       text not null,                      -- packet.created, claim.settled, packet.finished, packet.refunded
    body       bytea not null,                     -- the exact JSON POSTed at every attempt
    created_at timestamptz not null default now(),
    next_at    timestamptz not null default now(), -- when a dispatcher may take it: a lease's end or the next retry
    attempts   int not null default 0,             -- POSTs started so far
    last_error text,
    dead_at    timestamptz                         -- set after the last attempt failed; kept for an operator
);

create index webhook_outbox_due on webhook_outbox (next_at) where dead_at is null;
