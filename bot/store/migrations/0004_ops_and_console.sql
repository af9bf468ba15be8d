-- Scheduler leases and job slots (bot.ops.locks) and alert claims (bot.store.alerts), shared
-- by every replica: a scheduled job runs once, refreshes of one department never overlap,
-- an alert is posted once. Columns follow ops.sqlite3 (times are seconds since the epoch
-- on the caller's clock, as there).
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires double precision NOT NULL,
    taken double precision NOT NULL
);
CREATE TABLE job_runs (
    job text NOT NULL,
    slot bigint NOT NULL,
    "time" double precision NOT NULL,
    PRIMARY KEY (job, slot)
);
CREATE INDEX job_runs_time ON job_runs ("time");
CREATE TABLE alerts_sent (
    department text NOT NULL,
    condition text NOT NULL,
    day text NOT NULL,
    "time" double precision NOT NULL,
    detail text NOT NULL DEFAULT '',
    PRIMARY KEY (department, condition, day)
);
CREATE INDEX alerts_sent_time ON alerts_sent ("time");
-- The admin console (bot.store.admin_sessions): hashes of sign-in links and session ids,
-- failed sign-ins, and its audit trail; columns follow admin-sessions.sqlite3 (events gain
-- an id: PostgreSQL has no rowid to order events of one instant by).
CREATE TABLE links (
    token_hash text PRIMARY KEY, email text NOT NULL, created double precision NOT NULL,
    expires double precision NOT NULL, used double precision
);
CREATE INDEX links_expires ON links (expires);
CREATE INDEX links_email ON links (lower(email));
CREATE TABLE sessions (
    id_hash text PRIMARY KEY, email text NOT NULL, created double precision NOT NULL,
    last_seen double precision NOT NULL, expires double precision NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires);
CREATE INDEX sessions_email ON sessions (lower(email));
CREATE TABLE failures (client text NOT NULL, at double precision NOT NULL);
CREATE INDEX failures_client ON failures (client, at);
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    at double precision NOT NULL, event text NOT NULL, "user" text NOT NULL,
    department text NOT NULL DEFAULT '', detail text NOT NULL DEFAULT ''
);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_user ON events (lower("user"));
-- Answer-level eval runs (bot.store.evalruns): aggregate scores and eval-case labels only.
CREATE TABLE eval_runs (
    id bigserial PRIMARY KEY,
    department text NOT NULL,
    "time" double precision NOT NULL,
    "trigger" text NOT NULL,
    cases bigint NOT NULL,
    source_hit double precision,
    fact_hit double precision,
    answered double precision,
    refusal double precision,
    p50_ms double precision NOT NULL,
    p95_ms double precision NOT NULL,
    passed bigint NOT NULL,
    below text NOT NULL,
    failed_cases text NOT NULL
);
CREATE INDEX eval_runs_dept_time ON eval_runs (department, "time");
