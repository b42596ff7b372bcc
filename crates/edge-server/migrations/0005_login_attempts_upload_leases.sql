-- Login attempts reserved before the password check, upload claims that expire with
-- the process that took them.
ALTER TABLE login_failures ADD COLUMN attempt TEXT;
ALTER TABLE login_failures ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX login_failures_attempt ON login_failures (attempt);
ALTER TABLE uploads ADD COLUMN receiver TEXT;
ALTER TABLE uploads ADD COLUMN lease_until BIGINT;
