-- Which state folder a `deptbot db copy` copy belongs to (bot/store/pg_copy.py). 0009 told
-- copies apart by host name, but replicas can share one (containers given the same
-- hostname, cloned VMs, "localhost"): `deptbot check` on replica B then found replica A's
-- path missing "on its host" and forgot A's record, so later erases stopped naming that
-- copy. A random id written once into each state folder (<state>/state-id) is recorded
-- with each copy instead; a record is forgotten only by a `deptbot check` whose state
-- folder holds the same id. Rows from 0009 keep NULL: never forgotten automatically
-- (fail closed), still warned about. The host name stays, for the humans reading it.
ALTER TABLE state_copies ADD COLUMN state_id text;
