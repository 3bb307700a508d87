-- Webhooks: POST the job document to the caller's callback_url when the job ends.
ALTER TABLE jobs ADD COLUMN callback_url text;
ALTER TABLE jobs ADD COLUMN webhook_status text
    CHECK (webhook_status IN ('PENDING', 'DELIVERED', 'FAILED'));
ALTER TABLE jobs ADD COLUMN webhook_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN webhook_last_error text;
ALTER TABLE jobs ADD COLUMN webhook_delivered_at timestamptz;
-- When the delivery message was last sent, so the sweeper re-sends only lost ones.
ALTER TABLE jobs ADD COLUMN webhook_enqueued_at timestamptz;
ALTER TABLE jobs ADD CONSTRAINT jobs_webhook_needs_callback
    CHECK (webhook_status IS NULL OR callback_url IS NOT NULL);

CREATE INDEX jobs_webhook_pending_idx ON jobs (webhook_enqueued_at) WHERE webhook_status = 'PENDING';
