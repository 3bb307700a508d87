"""Domain rules: what a job is allowed to do, independent of HTTP and SQS."""
