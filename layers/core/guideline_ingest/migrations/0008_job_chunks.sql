-- Documents of any length (issue 27): each chunk's answer is stored as soon as it completes, so a
-- later delivery (after an outage, a crash, or a continuation before the Lambda deadline) never
-- asks the LLM for it again. fingerprint: the chunk's text, model and prompts; a result is reused
-- only for the same one.
CREATE TABLE job_chunks (
    event_id uuid NOT NULL REFERENCES jobs (event_id) ON DELETE CASCADE,
    chunk_index integer NOT NULL CHECK (chunk_index >= 0),
    fingerprint text NOT NULL,
    result jsonb NOT NULL,
    input_tokens integer NOT NULL CHECK (input_tokens >= 0),
    output_tokens integer NOT NULL CHECK (output_tokens >= 0),
    model text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, chunk_index)
);
-- {chunks_done, chunks_total}, shown on the job while it runs.
ALTER TABLE jobs ADD COLUMN progress jsonb;
-- Claims given back before the deadline to continue at once: neither retries nor dead workers.
ALTER TABLE jobs ADD COLUMN continuations integer NOT NULL DEFAULT 0 CHECK (continuations >= 0);
