# context_infos.json: DJ-Sandbox's record of every job's outputs, assembled from the job
# directories (never the state that drives the run). Also publishes artifacts at their
# export_path / path_k_sigma_recipe and links readable names under pipelines/.


rule context_infos:
    input:
        SANDFLOW.targets(),
    output:
        SANDFLOW.plan.context_infos_path,
    log:
        f"{SANDFLOW.work_dir}/logs/context_infos.log",
    params:
        spec=SANDFLOW.get_assembly_spec,
    script:
        "../scripts/assemble_context.py"
