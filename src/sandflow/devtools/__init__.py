"""Tools for tests and demos, never imported by the workflow."""
