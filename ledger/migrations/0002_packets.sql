-- Packets and their committed claims: the system of record Redis is rebuilt
-- from. Times in unix milliseconds are bigint.

create table packets (
    id          uuid primary key,
    room        text not null,
    sender_id   text not null,
    sender_name text not null,
    kind        text not null,
    total       bigint not null check (total > 0),
    count       int not null check (count > 0),
    greeting    text not null,
    created_at  bigint not null,
    visible_at  bigint not null,
    expires_at  bigint not null,
    shares      bigint[] not null,         -- the pre-split shares
    rain_id     uuid,
    status      text not null default 'open' check (status in ('open', 'empty', 'expired')),
    finished_at bigint,
    refunded    bigint,                    -- set by Finish
    settled_at  timestamptz,               -- set by MarkSettled: nothing left to do
    due_at      bigint not null            -- when the sweeper next looks at it
);

create index packets_room on packets (room, created_at desc, id desc);
create index packets_sender on packets (sender_id, created_at desc, id desc);
create index packets_due on packets (due_at) where settled_at is null;

create table claims (
    packet_id    uuid not null references packets (id),
    user_id      text not null,
    user_name    text not null,
    seq          int not null check (seq > 0),
    amount       bigint not null check (amount > 0),
    at           bigint not null,
    committed_at timestamptz not null default now(),
    primary key (packet_id, user_id),
    unique (packet_id, seq)
);

create index claims_user on claims (user_id, at desc, packet_id desc);
