"""Layer 4: the job graph of a config: jobs, edges, keys, iterations."""
