-- Where `deptbot db copy` moved the copied SQLite files (bot/store/pg_copy.py): each replica
-- has its own state folder, so an erase run on one host cannot see a copy left on another.
-- Recorded here, every erase names the copies it could not reach, and `deptbot check`
-- warns while one is recorded, and the daily retention job raises an admin notice (once)
-- when a copy outlives the shortest retention setting. A row goes when `deptbot check` on that host finds the
-- folder deleted.
CREATE TABLE state_copies (
    host text NOT NULL,
    path text NOT NULL,
    at double precision NOT NULL,
    warned boolean NOT NULL DEFAULT false,  -- the daily retention job's notice: once per copy
    PRIMARY KEY (host, path)
);
