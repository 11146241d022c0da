# Execute: process data, manipulate data pools, train and run models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule process_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProcessDataHook"),
    log:
        SANDFLOW.job_log("ProcessDataHook"),
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

rule data_pool_manipulation:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("DataPoolManipulationHook"),
    log:
        SANDFLOW.job_log("DataPoolManipulationHook"),
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

rule general_data_executor:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("GeneralDataExecutorHook"),
    log:
        SANDFLOW.job_log("GeneralDataExecutorHook"),
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

rule train_model:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("TrainModelHook"),
    log:
        SANDFLOW.job_log("TrainModelHook"),
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

rule infer_model:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("InferModelHook"),
    log:
        SANDFLOW.job_log("InferModelHook"),
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
