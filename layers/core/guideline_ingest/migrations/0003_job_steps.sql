-- Progress of the chain's steps, with each step's model, prompt version, tokens and latency.
ALTER TABLE jobs ADD COLUMN steps jsonb NOT NULL DEFAULT '[]';
