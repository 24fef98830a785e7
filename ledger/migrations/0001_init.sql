-- The double-entry journal: accounts, the movements between them, and each
-- movement's postings (which sum to zero).

create table accounts (
    id             text primary key,       -- wallet:<user>, escrow:<packet>, funding
    kind           text not null check (kind in ('wallet', 'escrow', 'funding')),
    owner          text,                   -- user id, packet id, or null for funding
    balance        bigint not null default 0,
    -- Wallet counters, each the sum of one kind of the wallet's postings.
    funded         bigint not null default 0,
    received_total bigint not null default 0,
    received_count bigint not null default 0,
    sent_total     bigint not null default 0,
    sent_count     bigint not null default 0,
    refunded       bigint not null default 0,
    updated_at     timestamptz not null default now(),
    constraint accounts_balance_not_negative check (kind = 'funding' or balance >= 0)
);

-- Only accounts holding money: global sums read this, not every account ever.
create index accounts_holding on accounts (kind, id) include (balance) where balance <> 0;

-- The one source of guest starting balances and admin credits; -balance is
-- all the money ever put in.
insert into accounts (id, kind) values ('funding', 'funding');

create table movements (
    key       text primary key,            -- fund:<ref>, debit:<packet>, claim:<packet>:<user>, refund:<packet>
    kind      text not null check (kind in ('fund', 'debit', 'claim', 'refund')),
    packet_id uuid,
    user_id   text,
    amount    bigint not null check (amount >= 0),
    at        timestamptz not null default now()
);

create index movements_at on movements (at);

create table postings (
    movement text not null references movements (key),
    account  text not null references accounts (id),
    amount   bigint not null check (amount <> 0),
    primary key (movement, account)
);

create index postings_account on postings (account) include (amount);
