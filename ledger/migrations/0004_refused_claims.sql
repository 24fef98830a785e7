-- Claims Redis recorded (and a winner may have been told about) that the
-- ledger refused to pay: a grab after a Redis failover that took a position
-- already committed, a claim its escrow cannot cover. Money never moves for
-- them; each stays here, reported by every audit, until an operator
-- resolves it (resolved_at).

create table refused_claims (
    packet_id   uuid not null,
    user_id     text not null,
    user_name   text not null,
    seq         int not null,
    amount      bigint not null,
    at          bigint not null,
    reason      text not null,
    refused_at  timestamptz not null default now(),
    resolved_at timestamptz,
    primary key (packet_id, user_id, seq)
);

create index refused_claims_open on refused_claims (refused_at) where resolved_at is null;
