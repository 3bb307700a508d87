-- Idempotency-Key of POST /jobs, scoped to the caller's API key.
CREATE TABLE idempotency_keys (
    owner         text        NOT NULL,
    key           text        NOT NULL,
    -- sha256 of the request body as validated, so a different body under the same key is refused.
    request_hash  text        NOT NULL,
    event_id      uuid        NOT NULL REFERENCES jobs (event_id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set once the job's message is sent; until then a duplicate is told to wait (409).
    completed_at  timestamptz,
    PRIMARY KEY (owner, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_event_idx ON idempotency_keys (event_id);
