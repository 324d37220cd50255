-- Each file's size as a column, so a project's storage use is one indexed sum (quotas).
ALTER TABLE files ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
UPDATE files SET bytes = COALESCE(json_extract(body, '$.bytes'), 0);
