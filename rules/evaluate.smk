# Evaluate: score the processed data and the trained models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/run/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule evaluate_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("EvaluateDataHook"),
    log:
        SANDFLOW.job_log("EvaluateDataHook"),
    conda:
        JOB_RESOURCES.conda_env_of("EvaluateDataHook")
    threads: JOB_RESOURCES.threads_of("EvaluateDataHook")
    resources:
        **JOB_RESOURCES.resources_of("EvaluateDataHook"),
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
    conda:
        JOB_RESOURCES.conda_env_of("EvaluateModelHook")
    threads: JOB_RESOURCES.threads_of("EvaluateModelHook")
    resources:
        **JOB_RESOURCES.resources_of("EvaluateModelHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
