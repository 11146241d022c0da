"""Leaf helpers every layer may use: atomic writes, digests, job I/O, the work_dir layout."""
