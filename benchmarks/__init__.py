"""Benchmarks of hf_lilaw: cost (`cost.py`) and accuracy under label noise (`accuracy.py`); see docs/benchmarks.md."""
