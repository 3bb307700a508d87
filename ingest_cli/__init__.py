"""`ingest`: the command-line client of the guideline-ingest API (submit, status, list, cancel).

It talks HTTP with the standard library only, so it needs nothing from the service's own code and
installs beside it without touching the Lambda layer.
"""
