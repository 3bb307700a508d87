"""Data access: the only modules that speak SQL."""
