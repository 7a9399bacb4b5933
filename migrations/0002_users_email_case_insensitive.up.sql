-- Emails are unique without regard to case. The service stores them lower-cased; this index makes
-- the rule hold for any writer, and is the constraint a conflicting insert reports.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
