-- The Teams adapter's conversation state, shared by every replica (bot/store/pg_teams_state.py).
-- The same tables as teams-state.sqlite3 (bot/store/teams_state.py): text, references and reply
-- payloads are sealed (bytea) under data keys in subject_keys; times are UNIX seconds.
create table if not exists teams_history (
    key text not null,
    seq integer not null,
    role text not null,
    text bytea not null,
    label integer,
    at double precision not null,
    request_id text,
    primary key (key, seq)
);
create index if not exists teams_history_at on teams_history (at);
create index if not exists teams_history_request on teams_history (request_id);

create table if not exists teams_replies (
    message_id text primary key,
    request_id text not null,
    payload bytea,
    at double precision not null
);
create index if not exists teams_replies_at on teams_replies (at);
create index if not exists teams_replies_request on teams_replies (request_id);

create table if not exists teams_references (
    key text primary key,
    reference bytea not null,
    at double precision not null
);
create index if not exists teams_references_at on teams_references (at);

-- Teams user id -> the person's subject id (sha256 of the e-mail, as subject_keys stores it;
-- never the e-mail), so a privacy erase finds every Teams row of the person directly.
create table if not exists teams_people (
    user_id text primary key,
    person text not null,
    at double precision not null
);
create index if not exists teams_people_person on teams_people (person);
create index if not exists teams_people_at on teams_people (at);
