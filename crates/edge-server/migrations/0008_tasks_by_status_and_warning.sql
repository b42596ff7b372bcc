-- An org's tasks in one status, newest first (the console's "running now", `GET /be/v1/tasks?status=`)
-- without a walk through every task of the org.
CREATE INDEX tasks_org_status ON tasks (org_id, status, created);

-- An app's tasks that carry a warning (the console's count of open warnings): few, found
-- without reading every task of the app.
CREATE INDEX tasks_warned ON tasks (app_id, created) WHERE warning IS NOT NULL;
