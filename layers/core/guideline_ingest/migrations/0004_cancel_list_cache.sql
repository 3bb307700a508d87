-- CANCELLED: a job stopped on its owner's request.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'));

-- Listing a caller's jobs newest first, by keyset.
CREATE INDEX jobs_owner_created_idx ON jobs (owner, created_at DESC, event_id DESC);

-- Identical-input cache: hash of model, prompt version and whitespace-normalised guidelines.
ALTER TABLE jobs ADD COLUMN cache_key text;
CREATE INDEX jobs_cache_idx ON jobs (cache_key, owner) WHERE status = 'COMPLETED';
