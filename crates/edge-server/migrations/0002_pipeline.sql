-- Deployments, builds, patches, uploads, published objects, the pipeline's steps and lines.
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
CREATE INDEX tasks_group ON tasks (task_group, step);
