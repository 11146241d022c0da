"""Rule entry point: assemble context_infos.json and publish artifacts."""

from sandflow.run.assembly import main_from_snakemake

main_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
