"""Rule entry point: record where an iterative run stopped, and why."""

from sandflow.run.iterations import outcome_from_snakemake

outcome_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
