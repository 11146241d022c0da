# Iterations with iter_targets: after iteration N, a checkpoint checks its targets and writes
# whether iteration N+1 runs; the plan then grows by that iteration (src/sandflow/plan/iterations.py).
# Without iter_targets every iteration is planned up front and these rules never run.


localrules:
    iteration_decision,


checkpoint iteration_decision:
    input:
        SANDFLOW.get_decision_inputs,
    output:
        SANDFLOW.decision_output(),
    log:
        f"{SANDFLOW.work_dir}/logs/iteration_decision/iter_{{n}}-{{digest}}.log",
    conda:
        "../envs/sandflow.yaml"
    params:
        spec=SANDFLOW.get_decision_spec,
    script:
        "../scripts/decide_iteration.py"


if SANDFLOW.iteration_outcome():

    rule iteration_outcome:
        input:
            decided_iterations,
        output:
            SANDFLOW.iteration_outcome(),
        log:
            f"{SANDFLOW.work_dir}/logs/iteration_outcome.log",
        conda:
            "../envs/sandflow.yaml"
        script:
            "../scripts/record_iteration_outcome.py"

    localrules:
        iteration_outcome,
