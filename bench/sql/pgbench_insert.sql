-- The physical limit for `create`: the service's insert (no email, like the scenario), straight to Postgres.
INSERT INTO users (name, email, avatar_url) VALUES ('Bench Created', NULL, NULL) RETURNING id, name, email, avatar_url, created_at, updated_at;
