# sandflow: a DJ-Sandbox experiment as a Snakemake workflow of content-hashed jobs.
#
#   snakemake --cores 2 --configfile configs/demo/sandbox.yaml
#
# Output paths, all under the config's work_dir:
#   jobs/<hook>/<key>/          one job: its artifacts, manifest.json, context.json (written last, by rename)
#   logs/<hook>/<key>.log       the job's log
#   context_infos.json          DJ-Sandbox's record of every job's outputs, assembled from the jobs
#   pipelines/<pipeline>/iter_<N>/<meta_name>  readable links to job directories
# <key> is a hash of everything that produces the job's result (src/sandflow/plan.py),
# so changing one value reruns only the jobs downstream of it.

import sys

from snakemake.exceptions import IncompleteCheckpointException
from snakemake.utils import min_version

from sandflow import job_server
from sandflow.resources import RuleResources
from sandflow.workflow import load_or_exit

min_version("9.0")

SANDFLOW = load_or_exit(config, workflow.configfiles)
# With a default storage provider (profiles/s3) the job store is in an object store (src/sandflow/storage.py).
SANDFLOW.use_storage(workflow.storage_settings.default_storage_provider)
if workflow.is_main_process:  # not again in every cluster job
    SANDFLOW.refuse_altered_artifacts()
# A job rerun only because a killed run left Snakemake's incomplete marker restores its committed
# record (src/sandflow/runner.py); --forceall/--forcerun/--force recompute it.
def forced_reruns() -> bool:
    settings = workflow.dag_settings
    return bool(settings.forceall or settings.forcerun or settings.forcetargets)


SANDFLOW.forced_reruns = forced_reruns
if workflow.is_main_process and SANDFLOW.plan.pending_note:
    print(f"sandflow: note: {SANDFLOW.plan.pending_note}", file=sys.stderr)
# Threads, resources and conda env of each job (envs are used only with --sdm conda).
JOB_RESOURCES = RuleResources(SANDFLOW.jobs, final=not SANDFLOW.plan.config.iter_targets)


wildcard_constraints:
    key="[0-9a-f]{16}",


report: "report/workflow.rst"


include: "rules/probe.smk"
include: "rules/refine.smk"
include: "rules/execute.smk"
include: "rules/evaluate.smk"
include: "rules/iterate.smk"
include: "rules/hpo.smk"
include: "rules/context.smk"
include: "rules/track.smk"


onstart:
    SANDFLOW.start_run()
    # Heavy jobs (Data-Juicer, torch) start warm from one server process (src/sandflow/job_server.py).
    job_server.start_for_local_run(workflow, SANDFLOW.work_dir)


onsuccess:
    job_server.stop_running()


onerror:
    job_server.stop_running()


rule all:
    input:
        SANDFLOW.plan.context_infos_path,
        # Named by what the iterations depend on: when it is missing, the iterations are decided again.
        SANDFLOW.iteration_outcome() or [],
        SANDFLOW.hpo_outputs()["best"] if SANDFLOW.plan.search else [],
        SANDFLOW.tracking_record() or [],
        # In an object store, Snakemake's records of which inputs built context_infos.json are on another
        # machine or gone; the publication record, named by every job key, makes a changed plan rebuild it.
        SANDFLOW.publication_record() if SANDFLOW.object_store else [],
    default_target: True
