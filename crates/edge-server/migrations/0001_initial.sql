-- Organizations, users, roles, sessions, tokens, API keys, apps, tasks, audit.
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
  target TEXT);
