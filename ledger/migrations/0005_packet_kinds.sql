-- The kinds of packet beyond lucky and equal, kept so that a packet Redis
-- lost is rebuilt whole: an exclusive packet's users (ids, and the names it
-- showed them by, position for position), a password packet's phrase (NFC;
-- it is public in the room) and a countdown packet's opening time (unix ms,
-- equal to visible_at; 0 for others).

alter table packets
    add column to_ids   text[] not null default '{}',
    add column to_names text[] not null default '{}',
    add column password text not null default '',
    add column opens_at bigint not null default 0;
