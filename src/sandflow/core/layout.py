"""Where everything lives under a work_dir: the one place that spells these paths.

jobs/<hook>/<key>/            a job: artifacts, manifest.json, context.json (written last)
logs/<hook>/<key>.log         its log
benchmarks/<hook>/<key>.tsv   Snakemake's benchmark of the job's last run (time, memory, I/O)
context_infos.json            DJ-Sandbox's record of every job's outputs
.sandflow/                    sandflow's own state: lock, file-hash cache, decisions, records
stats-cache/<op>/<sha256>.json  Data-Juicer filter stats every job reuses (hooks/dj_stats_store.py)
"""

from __future__ import annotations

import os

# A job directory's record (written last), the sha256 of every artifact, and a hard link to the record
# (same inode and mtime) that restores it if Snakemake removes it (run/runner.py).
CONTEXT_FILE = "context.json"
MANIFEST_FILE = "manifest.json"
COMMIT_FILE = ".context.committed.json"


def jobs_root(work_dir: str) -> str:
    return os.path.join(work_dir, "jobs")


def job_dir(work_dir: str, hook: str, key: str) -> str:
    return os.path.join(jobs_root(work_dir), hook, key)


def job_log(work_dir: str, hook: str, key: str) -> str:
    return os.path.join(logs_root(work_dir), hook, f"{key}.log")


def job_benchmark(work_dir: str, hook: str, key: str) -> str:
    return os.path.join(benchmarks_root(work_dir), hook, f"{key}.tsv")


def benchmarks_root(work_dir: str) -> str:
    return os.path.join(work_dir, "benchmarks")


def rule_log(work_dir: str, rule: str, name: str | None = None) -> str:
    """A bookkeeping rule's log: logs/<rule>.log, or logs/<rule>/<name>.log for one with wildcards."""
    if name is None:
        return os.path.join(logs_root(work_dir), f"{rule}.log")
    return os.path.join(logs_root(work_dir), rule, f"{name}.log")


def logs_root(work_dir: str) -> str:
    return os.path.join(work_dir, "logs")


def hpo_dir(work_dir: str) -> str:
    """An hpo_config search's results, and a bayes search's own files (hpo_search.py)."""
    return os.path.join(work_dir, "hpo")


def hpo_results(work_dir: str) -> dict[str, str]:
    """An hpo_config search's summary (report/hpo_results.py)."""
    directory = hpo_dir(work_dir)
    return {
        "best": os.path.join(directory, "best.json"),
        "table": os.path.join(directory, "trials.csv"),
        "plot": os.path.join(directory, "metric.png"),
    }


def tracking_record(work_dir: str, digest: str) -> str:
    """What a wandb tracking rule logged, named by the digest of its settings (run/tracking.py)."""
    return os.path.join(work_dir, "wandb", f"tracked-{digest}.json")


def wandb_dir(work_dir: str) -> str:
    """Where wandb keeps its run files (report/tracking.py)."""
    return os.path.join(work_dir, "wandb")


def report_outputs(work_dir: str) -> dict[str, str]:
    """What the Snakemake report shows of a run (report/figures.py)."""
    directory = os.path.join(work_dir, "report")
    return {"figures": os.path.join(directory, "figures"), "metrics": os.path.join(directory, "metrics.csv")}


def context_infos(work_dir: str) -> str:
    return os.path.join(work_dir, "context_infos.json")


def state_path(work_dir: str, *parts: str) -> str:
    """A path in sandflow's own state directory, <work_dir>/.sandflow/."""
    return os.path.join(work_dir, ".sandflow", *parts)


def decision_path(work_dir: str, iteration: int | str, digest: str) -> str:
    """Whether iteration N runs another (rules/iterate.smk); the digest names what it depends on."""
    return state_path(work_dir, "iterations", f"iter_{iteration}-{digest}.json")


def stats_cache_dir(work_dir: str) -> str:
    """Data-Juicer filter stats shared by every job of the work_dir (hooks/dj_stats_store.py)."""
    return os.path.join(work_dir, "stats-cache")


def pipelines_dir(work_dir: str) -> str:
    """Readable names: pipelines/<pipeline>/iter_<N>/<name> links to job directories (run/context.py)."""
    return os.path.join(work_dir, "pipelines")


def work_dir_of_job_dir(job_dir: str) -> str | None:
    """The work_dir a job directory (or its <key>.partial-<pid> twin) is in; None when it is not laid out as
    jobs/<hook>/<key> (a hook called outside a run)."""
    hook_dir = os.path.dirname(os.path.abspath(job_dir))
    jobs = os.path.dirname(hook_dir)
    return os.path.dirname(jobs) if os.path.basename(jobs) == "jobs" else None
