-- Retries in time (docs/reliability.md, "Retrying through an outage").
-- due_at: when the job's current message becomes receivable (the send, a claim, or a delayed
-- re-send after a transient failure). The sweeper re-sends a job only when no message can be
-- live any more: due_at + the visibility timeout + the grace period have passed.
ALTER TABLE jobs ADD COLUMN due_at timestamptz;
UPDATE jobs SET due_at = enqueued_at;
ALTER TABLE jobs ALTER COLUMN due_at SET NOT NULL;
ALTER TABLE jobs ALTER COLUMN due_at SET DEFAULT now();
-- Transient failures so far: the backoff exponent, and what tells a released claim from a dead worker.
ALTER TABLE jobs ADD COLUMN retries integer NOT NULL DEFAULT 0 CHECK (retries >= 0);
-- The last transient failure, for the reason given when the retry budget runs out.
ALTER TABLE jobs ADD COLUMN last_transient_error text;

DROP INDEX jobs_unfinished_idx;
CREATE INDEX jobs_unfinished_idx ON jobs (status, due_at) WHERE status IN ('PENDING', 'PROCESSING');
