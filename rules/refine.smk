# Refine: turn probe results into a better data recipe.
# One generic rule per hook: {key} selects the job, its spec arrives as one params value.

rule refine_recipe_via_k_sigma:
    input:
        SANDFLOW.get_job_inputs,
    output:
        SANDFLOW.job_output("RefineRecipeViaKSigmaHook"),
    log:
        SANDFLOW.job_log("RefineRecipeViaKSigmaHook"),
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
    params:
        spec=SANDFLOW.get_job_spec,
    script:
        "../scripts/run_job.py"
