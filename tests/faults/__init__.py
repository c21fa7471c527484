"""Fault injection: crash torture, contention, disk full, cancellation, hostile input.

The default ``pytest`` run includes a quick subset of each part; the long crash soak runs
by hand: ``.venv/bin/python -m tests.faults.soak 1000`` (see ``tests/faults/soak.py``).
"""
