"""Rule entry point: run one sandflow job (the spec arrives as snakemake.params.spec)."""

from sandflow.run.runner import main_from_snakemake

main_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
