//! Schema migrations, one string per version, valid on SQLite and PostgreSQL alike
//! (TEXT and BIGINT columns only; booleans are 0/1). Never edit a released migration:
//! append a new one.

/// Migrations in order; version N is `MIGRATIONS[N-1]`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE orgs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL, rid TEXT NOT NULL,
  marking_id TEXT NOT NULL, operator BIGINT NOT NULL DEFAULT 0, dxorglnk TEXT,
  key_sealed TEXT, key_pw_sealed TEXT, public_key_pem TEXT, key_fingerprint TEXT,
  host TEXT, description TEXT, created BIGINT NOT NULL, updated BIGINT NOT NULL,
  CONSTRAINT orgs_name_key UNIQUE (name));
CREATE UNIQUE INDEX orgs_rid_key ON orgs (rid);
CREATE TABLE users (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, kind TEXT NOT NULL, machine_org TEXT,
  pw_hash TEXT, email TEXT, firstname TEXT, surname TEXT, title TEXT, label TEXT,
  created BIGINT NOT NULL, updated BIGINT NOT NULL, last_login BIGINT,
  CONSTRAINT users_username_key UNIQUE (username));
CREATE TABLE memberships (
  org_id TEXT NOT NULL, user_id TEXT NOT NULL, created BIGINT NOT NULL,
  PRIMARY KEY (org_id, user_id));
CREATE INDEX memberships_user ON memberships (user_id);
CREATE TABLE roles (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, label TEXT,
  perms TEXT NOT NULL, builtin BIGINT NOT NULL DEFAULT 0,
  created BIGINT NOT NULL, updated BIGINT NOT NULL,
  CONSTRAINT roles_org_name_key UNIQUE (org_id, name));
CREATE TABLE member_roles (
  org_id TEXT NOT NULL, user_id TEXT NOT NULL, role_id TEXT NOT NULL,
  PRIMARY KEY (org_id, user_id, role_id));
CREATE INDEX member_roles_role ON member_roles (role_id);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, user_id TEXT NOT NULL,
  created BIGINT NOT NULL, expires BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE tokens (
  hash TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT,
  expires BIGINT NOT NULL, rotated_at BIGINT, created BIGINT NOT NULL);
CREATE INDEX tokens_session ON tokens (session_id);
CREATE TABLE apikeys (
  key_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, user_id TEXT NOT NULL,
  secret_hash TEXT NOT NULL, label TEXT, created BIGINT NOT NULL, expires BIGINT,
  last_used BIGINT);
CREATE INDEX apikeys_user ON apikeys (user_id);
CREATE TABLE login_failures (key TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX login_failures_key ON login_failures (key, at);
CREATE TABLE apps (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, label TEXT NOT NULL,
  max_builds BIGINT NOT NULL DEFAULT 5, deployments TEXT NOT NULL DEFAULT '[]',
  client_key_sealed TEXT, i_cur_build BIGINT, dxf_name TEXT, build_name TEXT,
  error BIGINT NOT NULL DEFAULT 0, error_task TEXT, next_build_id BIGINT NOT NULL DEFAULT 1,
  created BIGINT NOT NULL, updated BIGINT NOT NULL,
  CONSTRAINT apps_org_name_key UNIQUE (org_id, name));
CREATE TABLE tasks (
  name TEXT PRIMARY KEY, org_id TEXT, org_name TEXT, type TEXT NOT NULL, task_group TEXT NOT NULL,
  app_id TEXT, app_name TEXT, build_name TEXT, build_id BIGINT, status TEXT NOT NULL,
  progress DOUBLE PRECISION NOT NULL DEFAULT 0, created BIGINT NOT NULL, started BIGINT,
  ended BIGINT, attempts BIGINT NOT NULL DEFAULT 0, warning TEXT, exception TEXT,
  result TEXT, params TEXT NOT NULL DEFAULT '{}', lease_owner TEXT, lease_until BIGINT,
  run_after BIGINT NOT NULL DEFAULT 0);
CREATE INDEX tasks_status ON tasks (status, run_after);
CREATE INDEX tasks_org ON tasks (org_id, created);
CREATE TABLE audit (
  id TEXT PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT)
"#,
    r#"
CREATE TABLE deployments (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, label TEXT,
  origin_prefix TEXT NOT NULL DEFAULT '', origin_type TEXT NOT NULL, origin TEXT NOT NULL,
  secret_sealed TEXT, download_auth TEXT, download_secret_sealed TEXT, public_url TEXT,
  status TEXT NOT NULL DEFAULT 'ok', message TEXT,
  created BIGINT NOT NULL, updated BIGINT NOT NULL,
  CONSTRAINT deployments_org_name_key UNIQUE (org_id, name));
CREATE TABLE builds (
  app_id TEXT NOT NULL, build_id BIGINT NOT NULL, org_id TEXT NOT NULL, build_name TEXT NOT NULL,
  dxf_name TEXT, size_bytes BIGINT NOT NULL DEFAULT 0, image_bytes BIGINT NOT NULL DEFAULT 0,
  content_hash TEXT NOT NULL, tree_path TEXT NOT NULL, task_group TEXT NOT NULL,
  status TEXT NOT NULL, created BIGINT NOT NULL,
  PRIMARY KEY (app_id, build_id));
CREATE TABLE patches (
  app_id TEXT NOT NULL, from_build BIGINT NOT NULL, to_build BIGINT NOT NULL,
  size_bytes BIGINT NOT NULL, to_dxf_name TEXT NOT NULL, created BIGINT NOT NULL,
  PRIMARY KEY (app_id, from_build, to_build));
CREATE TABLE uploads (
  token_hash TEXT PRIMARY KEY, task_name TEXT NOT NULL, org_id TEXT NOT NULL, app_id TEXT NOT NULL,
  expires BIGINT NOT NULL, size_expected BIGINT, sha256 TEXT, state TEXT NOT NULL,
  bytes BIGINT NOT NULL DEFAULT 0, created BIGINT NOT NULL);
CREATE INDEX uploads_task ON uploads (task_name);
CREATE TABLE published (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, app_id TEXT NOT NULL, deployment_id TEXT NOT NULL,
  obj_key TEXT NOT NULL, build_id BIGINT, created BIGINT NOT NULL, superseded BIGINT,
  CONSTRAINT published_target_key UNIQUE (app_id, deployment_id, obj_key));
CREATE INDEX published_superseded ON published (superseded);
ALTER TABLE tasks ADD COLUMN step BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN queue_pos BIGINT;
CREATE INDEX tasks_app_line ON tasks (app_id, queue_pos);
CREATE INDEX tasks_group ON tasks (task_group, step)
"#,
    r#"
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
CREATE INDEX deliveries_due ON deliveries (status, subscription_id, id)
"#,
    r#"
CREATE TABLE imports (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, user_id TEXT NOT NULL, bundle TEXT NOT NULL,
  base TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL);
CREATE TABLE rte_sessions (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, app_id TEXT NOT NULL, build_id BIGINT NOT NULL, dxf_name TEXT NOT NULL,
  token_hash TEXT NOT NULL, state TEXT NOT NULL, client TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL,
  ended BIGINT, play_seconds BIGINT, stalls BIGINT, stall_seconds BIGINT, trace_id TEXT);
CREATE UNIQUE INDEX rte_sessions_token ON rte_sessions (token_hash);
CREATE INDEX rte_sessions_expires ON rte_sessions (expires);
CREATE TABLE traces (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL, app_id TEXT NOT NULL, build_id BIGINT NOT NULL, session_id TEXT NOT NULL,
  events BIGINT NOT NULL, bytes BIGINT NOT NULL, created BIGINT NOT NULL);
CREATE INDEX traces_app ON traces (app_id, created);
CREATE TABLE trainings (
  app_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, n_traces_reliable BIGINT NOT NULL DEFAULT 12,
  since_sequence BIGINT NOT NULL DEFAULT 0, generation BIGINT NOT NULL DEFAULT 0, preload TEXT,
  acceleration TEXT, last_sequence BIGINT)
"#,
    // Login attempts reserved before the password check; upload claims that expire with
    // the process that took them.
    r#"
ALTER TABLE login_failures ADD COLUMN attempt TEXT;
ALTER TABLE login_failures ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX login_failures_attempt ON login_failures (attempt);
ALTER TABLE uploads ADD COLUMN receiver TEXT;
ALTER TABLE uploads ADD COLUMN lease_until BIGINT
"#,
];
