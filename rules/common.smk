# Input functions, kept apart from the rules as snakemake --lint asks. Iteration decisions are
# checkpoints (rules/iterate.smk); an input that needs one asks for it through decision_file.

from snakemake.exceptions import IncompleteCheckpointException


def decision_file(n, digest):
    """Iteration n's decision; while it is missing, Snakemake's checkpoint target for it, so that
    Snakemake runs the checkpoint and then evaluates the asking input function again."""
    try:
        return checkpoints.iteration_decision.get(n=n, digest=digest).output[0]
    except IncompleteCheckpointException as undecided:
        return undecided.targetfile


def decided_iterations(wildcards):
    return SANDFLOW.iterations.decision_files(decision_file)


def context_infos_inputs(wildcards):
    return SANDFLOW.assembly.context_infos_inputs(decision_file)
