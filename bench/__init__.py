"""Benchmarks of the service on one machine: `python -m bench` (or `make bench`).

Loads stay on loopback and are bounded, so a full run takes a few minutes; `--quick` is a smoke.
"""
