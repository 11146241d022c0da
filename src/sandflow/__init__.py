"""sandflow: Data-Juicer sandbox experiments as a Snakemake workflow of content-hashed jobs."""

from sandflow.hooks.user_base import BaseHook  # a user's own hook subclasses it (standard library only)

__all__ = ["BaseHook"]
__version__ = "0.1.0"
