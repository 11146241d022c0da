"""Layer 1: reading and validating a sandbox config (nothing here plans or runs)."""
