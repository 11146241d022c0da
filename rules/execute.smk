# Execute: process data, manipulate data pools, train and run models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/run/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule process_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProcessDataHook"),
    log:
        SANDFLOW.job_log("ProcessDataHook"),
    conda:
        JOB_RESOURCES.conda_env_of("ProcessDataHook")
    threads: JOB_RESOURCES.threads_of("ProcessDataHook")
    resources:
        **JOB_RESOURCES.resources_of("ProcessDataHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule data_pool_manipulation:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("DataPoolManipulationHook"),
    log:
        SANDFLOW.job_log("DataPoolManipulationHook"),
    conda:
        JOB_RESOURCES.conda_env_of("DataPoolManipulationHook")
    threads: JOB_RESOURCES.threads_of("DataPoolManipulationHook")
    resources:
        **JOB_RESOURCES.resources_of("DataPoolManipulationHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule general_data_executor:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("GeneralDataExecutorHook"),
    log:
        SANDFLOW.job_log("GeneralDataExecutorHook"),
    conda:
        JOB_RESOURCES.conda_env_of("GeneralDataExecutorHook")
    threads: JOB_RESOURCES.threads_of("GeneralDataExecutorHook")
    resources:
        **JOB_RESOURCES.resources_of("GeneralDataExecutorHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule train_model:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("TrainModelHook"),
    log:
        SANDFLOW.job_log("TrainModelHook"),
    conda:
        JOB_RESOURCES.conda_env_of("TrainModelHook")
    threads: JOB_RESOURCES.threads_of("TrainModelHook")
    resources:
        **JOB_RESOURCES.resources_of("TrainModelHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule infer_model:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("InferModelHook"),
    log:
        SANDFLOW.job_log("InferModelHook"),
    conda:
        JOB_RESOURCES.conda_env_of("InferModelHook")
    threads: JOB_RESOURCES.threads_of("InferModelHook")
    resources:
        **JOB_RESOURCES.resources_of("InferModelHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
