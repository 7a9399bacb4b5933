-- Keyset pagination walks users newest first by (created_at, id); this index serves both the
-- first page and every page after a cursor without a sort.
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);
