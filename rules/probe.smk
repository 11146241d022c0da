# Probe: look into data (and models) before deciding anything.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/run/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule probe_via_analyzer:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProbeViaAnalyzerHook"),
    log:
        SANDFLOW.job_log("ProbeViaAnalyzerHook"),
    conda:
        JOB_RESOURCES.conda_env_of("ProbeViaAnalyzerHook")
    threads: JOB_RESOURCES.threads_of("ProbeViaAnalyzerHook")
    resources:
        **JOB_RESOURCES.resources_of("ProbeViaAnalyzerHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule probe_via_model_infer:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProbeViaModelInferHook"),
    log:
        SANDFLOW.job_log("ProbeViaModelInferHook"),
    conda:
        JOB_RESOURCES.conda_env_of("ProbeViaModelInferHook")
    threads: JOB_RESOURCES.threads_of("ProbeViaModelInferHook")
    resources:
        **JOB_RESOURCES.resources_of("ProbeViaModelInferHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule general_probe:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("GeneralProbeHook"),
    log:
        SANDFLOW.job_log("GeneralProbeHook"),
    conda:
        JOB_RESOURCES.conda_env_of("GeneralProbeHook")
    threads: JOB_RESOURCES.threads_of("GeneralProbeHook")
    resources:
        **JOB_RESOURCES.resources_of("GeneralProbeHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
