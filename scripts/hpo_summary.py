"""Rule entry point: rank an hpo_config search's trials by their metric."""

from sandflow.run.hpo import main_from_snakemake

main_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
