# wandb tracking (the config's `wandb` key): after context_infos.json, one wandb run per
# pipeline with each job's config, scalar outputs and training curves (src/sandflow/report/tracking.py).
# A local rule: an online run talks to wandb from the submitting host, not from a cluster node.

if SANDFLOW.tracking.record():

    localrules:
        track_wandb,

    rule track_wandb:
        input:
            SANDFLOW.plan.context_infos_path,
        output:
            SANDFLOW.tracking.record(),
        log:
            SANDFLOW.tracking.log(),
        conda:
            "../envs/sandflow.yaml"
        params:
            spec=SANDFLOW.tracking.spec,
        script:
            "../scripts/track_wandb.py"
