# context_infos.json: DJ-Sandbox's record of every job's outputs, assembled from the job
# directories (never the state that drives the run). Also publishes artifacts at their
# export_path / path_k_sigma_recipe, links readable names under pipelines/ and writes
# what the Snakemake report shows (report/figures/, report/metrics.csv).
# Both are bookkeeping: on a cluster they run on the submitting host, not as jobs.


localrules:
    publication_record,
    context_infos,


rule publication_record:
    input:
        # An iterative run's plan grows with its decisions: waiting for them spares recording the
        # first iteration's plan before the grown one.
        decided_iterations,
    output:
        SANDFLOW.assembly.publication_output(),
    log:
        SANDFLOW.assembly.publication_log(),
    conda:
        "../envs/sandflow.yaml"
    params:
        spec=SANDFLOW.assembly.spec,
    script:
        "../scripts/record_spec.py"


rule context_infos:
    input:
        unpack(context_infos_inputs),
    output:
        SANDFLOW.plan.context_infos_path,
        figures=report(
            directory(SANDFLOW.assembly.report_outputs()["figures"]),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        metrics=report(
            SANDFLOW.assembly.report_outputs()["metrics"], caption="../report/metrics.rst", category="Metrics"
        ),
    log:
        SANDFLOW.assembly.context_infos_log(),
    conda:
        "../envs/sandflow.yaml"
    params:
        spec=SANDFLOW.assembly.spec,
    script:
        "../scripts/assemble_context.py"
