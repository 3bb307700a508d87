"""Shared code of the guideline-ingest functions, shipped as the core Lambda layer."""
