-- Configuration imports, launcher sessions, play traces, trainings.
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
  acceleration TEXT, last_sequence BIGINT);
