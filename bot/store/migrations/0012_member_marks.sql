-- Membership marks (bot/store/member_marks.py): Slack and Teams deliver a membership event
-- (member_joined_channel, conversationUpdate, ...) to ONE replica, but every replica caches
-- member lists. The replica that gets the event bumps the conversation's version here; every
-- replica reads it (one primary-key lookup) before trusting a cached list, and fetches the
-- list again when it moved. `conversation` is namespaced ("slack:C123", "teams:tenant:id").
-- Rows are never deleted: a counter that restarted at 0 could match a stale cached version.
CREATE TABLE member_marks (
    conversation text PRIMARY KEY,
    version bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
