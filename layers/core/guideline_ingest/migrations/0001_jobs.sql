-- Jobs: one row per submitted guidelines document.
CREATE TABLE jobs (
    event_id         uuid PRIMARY KEY,
    owner            text        NOT NULL,
    status           text        NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    guidelines       text        NOT NULL,
    result           jsonb,
    error            jsonb,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- A claim holds the job until this instant; past it, another delivery may claim it again.
    lease_expires_at timestamptz,
    -- When the job's message was last sent, so the sweeper re-sends only forgotten jobs.
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'COMPLETED') = (result IS NOT NULL)),
    CHECK ((status = 'FAILED') = (error IS NOT NULL))
);

-- The sweeper scans only jobs that are not finished.
CREATE INDEX jobs_unfinished_idx ON jobs (status, enqueued_at)
    WHERE status IN ('PENDING', 'PROCESSING');
