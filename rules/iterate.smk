# Iterations with iter_targets: after iteration N, a checkpoint checks its targets and writes
# whether iteration N+1 runs; the plan then grows by that iteration (src/sandflow/plan/iterations.py).
# Without iter_targets every iteration is planned up front and these rules never run.


localrules:
    iteration_decision,


checkpoint iteration_decision:
    input:
        SANDFLOW.iterations.inputs,
    output:
        SANDFLOW.iterations.decision_output(),
    log:
        SANDFLOW.iterations.decision_log(),
    conda:
        "../envs/sandflow.yaml"
    params:
        spec=SANDFLOW.iterations.spec,
    script:
        "../scripts/decide_iteration.py"


if SANDFLOW.iterations.outcome():

    rule iteration_outcome:
        input:
            decided_iterations,
        output:
            SANDFLOW.iterations.outcome(),
        log:
            SANDFLOW.iterations.outcome_log(),
        conda:
            "../envs/sandflow.yaml"
        script:
            "../scripts/record_iteration_outcome.py"

    localrules:
        iteration_outcome,
