"""Rule entry point: write the rule's spec as a record; its file name is a hash of the spec, so a
rule that takes the record as input reruns when the spec changes (Snakemake's params trigger is off)."""

from sandflow.run.assembly import record_spec

record_spec(snakemake.params.spec, snakemake.output[0])  # noqa: F821 (injected by Snakemake)
