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
    return os.path.join(work_dir, "logs", hook, f"{key}.log")


def job_benchmark(work_dir: str, hook: str, key: str) -> str:
    return os.path.join(work_dir, "benchmarks", hook, f"{key}.tsv")


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


def work_dir_of_job_dir(job_dir: str) -> str | None:
    """The work_dir a job directory (or its <key>.partial-<pid> twin) is in; None when it is not laid out as
    jobs/<hook>/<key> (a hook called outside a run)."""
    hook_dir = os.path.dirname(os.path.abspath(job_dir))
    jobs = os.path.dirname(hook_dir)
    return os.path.dirname(jobs) if os.path.basename(jobs) == "jobs" else None
