-- What a running task is doing, in words, beside its progress (`progressNote`).
ALTER TABLE tasks ADD COLUMN progress_note TEXT;
