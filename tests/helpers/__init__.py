"""What tests share besides fixtures: import as ``from helpers.snakemake import snakemake`` (pyproject puts tests/ on
the path)."""
