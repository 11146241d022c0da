"""Rule entry point: check an iteration's targets and decide whether the next one runs."""

from sandflow.run.iterations import decision_from_snakemake

decision_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
