# Evaluate: score the processed data and the trained models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule evaluate_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("EvaluateDataHook"),
    log:
        SANDFLOW.job_log("EvaluateDataHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    threads: JOB_RESOURCES.get_threads
    resources:
        mem_mb=JOB_RESOURCES.get_mem_mb,
        runtime=JOB_RESOURCES.get_runtime,
        gpu=JOB_RESOURCES.get_gpu,
        gpu_model=JOB_RESOURCES.get_gpu_model,
        cpus_per_gpu=JOB_RESOURCES.get_cpus_per_gpu,
    conda:
        JOB_RESOURCES.get_conda_env
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
    threads: JOB_RESOURCES.get_threads
    resources:
        mem_mb=JOB_RESOURCES.get_mem_mb,
        runtime=JOB_RESOURCES.get_runtime,
        gpu=JOB_RESOURCES.get_gpu,
        gpu_model=JOB_RESOURCES.get_gpu_model,
        cpus_per_gpu=JOB_RESOURCES.get_cpus_per_gpu,
    conda:
        JOB_RESOURCES.get_conda_env
    script:
        "../scripts/run_job.py"
