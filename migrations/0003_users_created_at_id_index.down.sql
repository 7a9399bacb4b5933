DROP INDEX IF EXISTS users_created_at_id_idx;
