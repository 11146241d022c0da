# Probe: look into data (and models) before deciding anything.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.

rule probe_via_analyzer:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("ProbeViaAnalyzerHook"),
    log:
        SANDFLOW.job_log("ProbeViaAnalyzerHook"),
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
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
