-- An app's newest tasks (the console's overview, app and training pages) without a scan
-- of the organization's.
CREATE INDEX tasks_app_created ON tasks (app_id, created);
