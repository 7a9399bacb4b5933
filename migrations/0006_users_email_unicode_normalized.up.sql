-- Emails are unique without regard to case or to how an accent is encoded: `josé` typed with a
-- precomposed é and with e + U+0301 is one address. The service stores them lower-cased in NFC;
-- this index holds every writer to the rule, the previous release's replicas during a rollout
-- included. It keeps the name conflicts are recognised by. normalize() needs a UTF8 database; on
-- any other the index stays as it was.
DO $$
BEGIN
    IF current_setting('server_encoding') = 'UTF8' THEN
        CREATE UNIQUE INDEX users_email_normalized_key ON users (lower(normalize(email, NFC)));
        DROP INDEX users_email_lower_key;
        ALTER INDEX users_email_normalized_key RENAME TO users_email_lower_key;
    END IF;
END
$$;
