"""Measurements that back the numbers quoted in docstrings and the README (``python -m benchmarks.…``)."""
