"""sandflow: Data-Juicer sandbox experiments as a Snakemake workflow of content-hashed jobs."""

__version__ = "0.1.0"
