# Refine: turn probe results into a better data recipe.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.
# Threads, resources and conda env come from the job (src/sandflow/run/resources.py);
# the envs are used only with --sdm conda, else every job runs in the project's venv.


rule refine_recipe_via_k_sigma:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("RefineRecipeViaKSigmaHook"),
    log:
        SANDFLOW.job_log("RefineRecipeViaKSigmaHook"),
    conda:
        JOB_RESOURCES.conda_env_of("RefineRecipeViaKSigmaHook")
    threads: JOB_RESOURCES.threads_of("RefineRecipeViaKSigmaHook")
    resources:
        **JOB_RESOURCES.resources_of("RefineRecipeViaKSigmaHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"


rule refine_recipe_via_model_feedback:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("RefineRecipeViaModelFeedbackHook"),
    log:
        SANDFLOW.job_log("RefineRecipeViaModelFeedbackHook"),
    conda:
        JOB_RESOURCES.conda_env_of("RefineRecipeViaModelFeedbackHook")
    threads: JOB_RESOURCES.threads_of("RefineRecipeViaModelFeedbackHook")
    resources:
        **JOB_RESOURCES.resources_of("RefineRecipeViaModelFeedbackHook"),
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
