-- The first shared stores on PostgreSQL: the audit log with its HMAC chain, usage and
-- budgets, event de-duplication. Column names and meanings follow the SQLite stores
-- (bot/store/audit.py, usage.py, dedup.py) so `deptbot db copy` can move rows as they are.
-- Column types follow bot.store.audit.COLUMNS (str -> text, int -> bigint,
-- float -> double precision): the MAC is computed on values as they read back.

CREATE TABLE requests (
    seq bigint PRIMARY KEY,
    request_id text, "time" text, "user" text, platform text, decision text, rule text,
    status text, department text, template text, doc_ids text, generator text, model text,
    route text, route_reason text, input_tokens bigint, output_tokens bigint,
    cost double precision, confidence double precision, retrieve_ms double precision,
    generate_ms double precision, latency_ms double precision, cache_hit bigint,
    channel text, error text, pii_detected text,
    prev_hash text, row_hash text
);
CREATE UNIQUE INDEX requests_request_id ON requests (request_id);
CREATE INDEX requests_user_time ON requests ("user", "time");
CREATE INDEX requests_department_time ON requests (department, "time");

CREATE TABLE checkpoints (
    seq bigint NOT NULL, kind text NOT NULL, mac text NOT NULL, count bigint NOT NULL,
    "time" text NOT NULL, sig text NOT NULL, PRIMARY KEY (seq, kind)
);
-- Questions, sealed under the asker's data key (bot.governance.vault); outside the chain.
CREATE TABLE request_text (request_id text PRIMARY KEY, question bytea);
CREATE TABLE feedback (
    request_id text NOT NULL, "user" text NOT NULL, value text, reason bytea, "time" text,
    PRIMARY KEY (request_id, "user")
);

CREATE TABLE attempts (
    id bigserial PRIMARY KEY, request_id text, "time" text, day text, "user" text,
    department text, provider text, model text, tier text, route text, outcome text,
    input_tokens bigint, output_tokens bigint, cost double precision,
    latency_ms double precision, usage_reported bigint
);
CREATE INDEX attempts_day_user ON attempts (day, "user");
CREATE INDEX attempts_request_id ON attempts (request_id);
CREATE TABLE reservations (
    id bigserial PRIMARY KEY, request_id text, day text, "user" text, department text,
    tokens bigint, cost double precision, state text, "time" text
);
CREATE INDEX reservations_day_user ON reservations (day, "user");
CREATE INDEX reservations_day_department ON reservations (day, department);

CREATE TABLE seen_events (key text PRIMARY KEY, seen double precision NOT NULL);
CREATE INDEX seen_events_seen ON seen_events (seen);
CREATE TABLE answered_threads (
    channel text NOT NULL, thread text NOT NULL, seen double precision NOT NULL,
    PRIMARY KEY (channel, thread)
);
CREATE INDEX answered_threads_seen ON answered_threads (seen);
