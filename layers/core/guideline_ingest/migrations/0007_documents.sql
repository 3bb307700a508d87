-- Documents (issue 26): a job may come from a file, sent in the request or uploaded to S3.
-- The original stays in the documents bucket under document_key; its extracted text goes in
-- jobs.guidelines (empty until extraction) and its map of pages or sections in document_map.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('AWAITING_UPLOAD', 'PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'));

ALTER TABLE jobs ADD COLUMN document_key text;
ALTER TABLE jobs ADD COLUMN document_media_type text;
ALTER TABLE jobs ADD COLUMN document_filename text;
ALTER TABLE jobs ADD COLUMN document_size_bytes bigint CHECK (document_size_bytes >= 0);
-- ExtractedDocument.to_map(); NULL until the process function has extracted the file.
ALTER TABLE jobs ADD COLUMN document_map jsonb;
ALTER TABLE jobs ADD COLUMN document_characters integer;
-- The presigned POST's expiry; after it (and a grace period) the sweeper fails the job.
ALTER TABLE jobs ADD COLUMN upload_expires_at timestamptz;
ALTER TABLE jobs ADD CHECK ((document_key IS NULL) = (document_media_type IS NULL));
ALTER TABLE jobs ADD CHECK (status <> 'AWAITING_UPLOAD' OR upload_expires_at IS NOT NULL);

-- The upload function finds a job by the key of the object that arrived.
CREATE UNIQUE INDEX jobs_document_key_idx ON jobs (document_key) WHERE document_key IS NOT NULL;
-- The sweeper scans only uploads still awaited.
CREATE INDEX jobs_awaiting_upload_idx ON jobs (upload_expires_at) WHERE status = 'AWAITING_UPLOAD';
