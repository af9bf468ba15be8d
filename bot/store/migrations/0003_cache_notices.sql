-- The answer cache (bot.store.cache: answers sealed under the department's cache subject,
-- keyed by a hash of question + access) and admin notices (bot.store.notices), shared by
-- every replica. Columns follow cache.db and notices.sqlite3.
CREATE TABLE answers (
    key text PRIMARY KEY,
    stored double precision NOT NULL,
    subject text NOT NULL,
    request_id text NOT NULL,
    answer bytea NOT NULL
);
CREATE INDEX answers_stored ON answers (stored);
CREATE INDEX answers_request ON answers (request_id);

CREATE TABLE notices (
    id bigserial PRIMARY KEY,
    department text,
    kind text NOT NULL,
    text text NOT NULL,
    "time" double precision NOT NULL
);
CREATE INDEX notices_time ON notices ("time");
