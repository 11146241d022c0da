# Execute: process data, manipulate data pools, train and run models.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.

rule process_data:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProcessDataHook"),
    log:
        SANDFLOW.job_log("ProcessDataHook"),
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
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
