-- Users and groups pushed by an identity provider over SCIM, shared by every replica
-- (bot/directory/pg_scim_store.py). The same tables as scim.sqlite3 (bot/directory/scim_rows.py):
-- the resource as JSON in body, and in columns what deptbot reads and the indexes need.
create table if not exists scim_users (
    seq bigserial primary key,
    id text not null unique,
    name text not null,
    name_key text not null unique,  -- userName as filters compare it; unique as RFC 7643 says
    external_key text,
    active integer not null,
    address text,
    created text not null,
    modified text not null,
    version integer not null,
    body text not null
);
create index if not exists scim_users_external on scim_users (external_key);

create table if not exists scim_groups (
    seq bigserial primary key,
    id text not null unique,
    name text not null,
    name_key text not null,  -- displayName; not unique (Entra allows twins)
    external_key text,
    created text not null,
    modified text not null,
    version integer not null,
    body text not null
);
create index if not exists scim_groups_name on scim_groups (name);
create index if not exists scim_groups_name_key on scim_groups (name_key);
create index if not exists scim_groups_external on scim_groups (external_key);

create table if not exists scim_members (
    group_id text not null,
    member_id text not null,
    kind text not null,
    display text,
    pos integer not null,
    primary key (group_id, member_id)
);
create index if not exists scim_members_member on scim_members (member_id);
