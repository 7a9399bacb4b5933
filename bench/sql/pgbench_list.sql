-- The physical limit for `list`: the service's first-page query, straight to Postgres.
SELECT id, name, email, avatar_url, created_at, updated_at FROM users ORDER BY created_at DESC, id DESC LIMIT 21;
