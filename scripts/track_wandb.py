"""Rule entry point: log the experiment's finished jobs to wandb, one run per pipeline."""

from sandflow.run.tracking import main_from_snakemake

main_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
