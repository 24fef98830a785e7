-- Responses to requests that carried an Idempotency-Key, per sender.

create table idempotency_keys (
    sender_id    text not null,
    key          text not null,
    request_hash bytea not null,
    response     bytea,
    created_at   timestamptz not null default now(),
    primary key (sender_id, key)
);

create index idempotency_keys_created on idempotency_keys (created_at);
