# sandflow: a DJ-Sandbox experiment as a Snakemake workflow of content-hashed jobs.
#
#   snakemake --cores 2 --configfile configs/demo/sandbox.yaml
#
# Under the config's work_dir (src/sandflow/core/layout.py): jobs/<hook>/<key>/ (artifacts, manifest.json,
# context.json written last), logs/<hook>/<key>.log, context_infos.json, pipelines/<pipeline>/iter_<N>/<name>.
# <key> hashes all that produces a job's result (src/sandflow/plan/keys.py): a changed value reruns its jobs.

from snakemake.utils import min_version

from sandflow.core.keys import KEY_PATTERN
from sandflow.hooks.registry import hooks_of_stage
from sandflow.hooks.user_hooks import USER_HOOK_NAME, USER_HOOK_RULE
from sandflow.run.resources import RuleResources
from sandflow.run.workflow import load_or_exit

min_version("9.0")

SANDFLOW = load_or_exit(config, workflow)
JOB_RESOURCES = RuleResources(SANDFLOW.jobs.by_key, final=not SANDFLOW.plan.config.iter_targets)


wildcard_constraints:
    key=KEY_PATTERN,
    digest=KEY_PATTERN,
    n="[0-9]+",


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/probe.smk"
include: "rules/refine.smk"
include: "rules/execute.smk"
include: "rules/evaluate.smk"
include: "rules/user_hooks.smk"
include: "rules/iterate.smk"
include: "rules/hpo.smk"
include: "rules/context.smk"
include: "rules/track.smk"


onstart:
    SANDFLOW.start_run(workflow)


onsuccess:
    SANDFLOW.finish_run()


onerror:
    SANDFLOW.finish_run(failed=True)


rule all:
    default_target: True
    input:
        SANDFLOW.final_targets(),
