-- Per-person data keys (bot.governance.vault), wrapped with the master key, shared by every
-- replica: text sealed on one replica opens on another, and an erase shreds the key for
-- all. Columns follow keys.db's subject_keys so `deptbot db copy` moves rows as they are.
CREATE TABLE subject_keys (
    subject_id text PRIMARY KEY,
    key_id bytea NOT NULL,
    master_id text NOT NULL,
    wrapped bytea NOT NULL,
    created double precision NOT NULL
);
CREATE INDEX subject_keys_master ON subject_keys (master_id);
