-- Whether a claim was taken over from a holder that left it undone (bot/store/dedup.py,
-- `Claimed.TAKEN_OVER`). Such a holder may have died after posting its reply and before
-- marking the claim done; the Slack adapter then looks for that reply (by its message
-- metadata) before answering again. A first delivery is never looked up. Set by every
-- claim, returned by the claim's own upsert (RETURNING), so it costs no extra round trip.
-- Rows from before: 0 (they are done, or were fresh claims). Same column as the SQLite
-- file's in-place migration.
ALTER TABLE seen_events ADD COLUMN took_over smallint NOT NULL DEFAULT 0;
