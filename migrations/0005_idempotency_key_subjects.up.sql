-- An Idempotency-Key record belongs to the subject that made it: the `sub` of the bearer token
-- of its first request ('' when authentication is off). A repeat with the same key by another
-- subject is told apart like a repeat with another request (422), so one caller can never be
-- handed another's response.
--
-- Expand only: `key` stays the primary key and rows without a subject get '', so replicas of
-- the previous version (which insert without one, ON CONFLICT (key)) keep working while a
-- rollout replaces them.
ALTER TABLE idempotency_keys
    ADD COLUMN subject TEXT NOT NULL DEFAULT '' CHECK (length(subject) <= 255);
