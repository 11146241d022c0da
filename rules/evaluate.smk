# Evaluate: score the processed data and the trained models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.

rule evaluate_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("EvaluateDataHook"),
    log:
        SANDFLOW.job_log("EvaluateDataHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"

rule evaluate_model:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("EvaluateModelHook"),
    log:
        SANDFLOW.job_log("EvaluateModelHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
