-- Event claims become leases (bot/store/dedup.py): who holds an event and until when, and
-- whether its reply was posted. A redelivery may take over only an expired claim that is
-- not done, so an event whose replica died while answering still gets one reply.
-- Rows claimed before this migration were answered (or dropped as answered): done = 1.
-- The same columns and defaults as the SQLite file's in-place migration.
ALTER TABLE seen_events
    ADD COLUMN holder text NOT NULL DEFAULT '',
    ADD COLUMN expires double precision NOT NULL DEFAULT 0,
    ADD COLUMN done smallint NOT NULL DEFAULT 1;
