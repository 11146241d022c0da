"""Layer 5: what the Snakefile and its rules call: the workflow facade, one job's run, publishing."""
