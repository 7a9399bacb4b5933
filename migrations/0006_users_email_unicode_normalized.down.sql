CREATE UNIQUE INDEX users_email_plain_key ON users (lower(email));
DROP INDEX users_email_lower_key;
ALTER INDEX users_email_plain_key RENAME TO users_email_lower_key;
