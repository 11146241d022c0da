"""Rule entry point: record what the assembly will publish where (its name is the hash of it)."""

from sandflow.context import record_publication

record_publication(snakemake.params.spec, snakemake.output[0])  # noqa: F821 (injected by Snakemake)
