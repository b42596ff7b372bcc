-- Event subscriptions, the outbox and deliveries.
CREATE TABLE subscriptions (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, url TEXT,
  slack_channel TEXT, slack_token_sealed TEXT, secret_sealed TEXT NOT NULL, filter TEXT NOT NULL,
  enabled BIGINT NOT NULL DEFAULT 1, delivered BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,
  last_delivery BIGINT, last_status TEXT, last_error TEXT, created BIGINT NOT NULL, updated BIGINT NOT NULL,
  CONSTRAINT subscriptions_org_name_key UNIQUE (org_id, name));
CREATE TABLE outbox (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, app_name TEXT, task_type TEXT NOT NULL, event TEXT NOT NULL,
  body TEXT NOT NULL, created BIGINT NOT NULL);
CREATE TABLE deliveries (
  id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, event_id TEXT NOT NULL, org_id TEXT NOT NULL,
  status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at BIGINT NOT NULL, lease_until BIGINT,
  created BIGINT NOT NULL, last_error TEXT);
CREATE INDEX deliveries_due ON deliveries (status, subscription_id, id);
