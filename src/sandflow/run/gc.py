"""sandflow gc: remove the job directories of a work_dir that none of the given configs plans, with their logs
and benchmark records.

A dry run lists what would go and how much; ``--yes`` deletes. Per work_dir, the configs that use it are
planned while gc holds the work_dir lock (run/lock.py), so no run can add jobs between planning and deleting,
and gc refuses while a run holds it. Only real directories named like a key under ``jobs/<hook>/`` are
removed (shutil.rmtree never follows a symlink inside), their ``logs/<hook>/<key>.log`` and
``benchmarks/<hook>/<key>.tsv`` (user hooks' too), and readable links
under ``pipelines/`` and ``hpo/trial_<N>/pipelines/`` that point at them. Everything else is left and named:
symlinks (never followed, never removed), ``<key>.partial-<pid>`` directories (a run's job being written or
one killed; the next run of that key removes its stale ones) and the stats cache (filter stats, and the analysis
figures in its ``analysis/``), which goes wholly and only with ``--stats-cache``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from sandflow.config.errors import ConfigError
from sandflow.config.hpo_spec import load_hpo
from sandflow.config.load import load_config_file
from sandflow.config.model import SandboxConfig
from sandflow.core import layout
from sandflow.hooks.registry import HOOKS
from sandflow.hooks.user_hooks import is_user_hook_name
from sandflow.plan.planner import plan_config
from sandflow.run.lock import LockRefused, hold_lock

KEY_RE = re.compile(r"[0-9a-f]{16}")
PARTIAL_RE = re.compile(r"[0-9a-f]{16}\.partial-.+")
STATS_CACHE = "stats-cache"


class GcRefused(Exception):
    """gc cannot collect a work_dir: one line saying why."""


@dataclass
class Garbage:
    """What gc found in one work_dir."""

    work_dir: str
    kept: int = 0  # distinct job keys the configs plan
    removable: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes on disk)
    links: list[str] = field(default_factory=list)  # readable links to removable job directories
    left: list[str] = field(default_factory=list)  # what gc saw and leaves, with why
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(size for _, size in self.removable)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def disk_usage(path: str) -> int:
    """Bytes on disk under path, each inode once, symlinks as themselves (what `du -s -B1` says)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):  # followlinks=False: a symlinked directory is listed, not entered
        for name in [*dirs, *files, ""] if root == path else [*dirs, *files]:
            info = os.lstat(os.path.join(root, name) if name else root)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def entries(directory: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as listing:
        yield from sorted(listing, key=lambda entry: entry.name)


def referenced_keys(configs: list[SandboxConfig], garbage: Garbage) -> set[tuple[str, str]]:
    """(hook, key) of every job the configs plan now, notes on what is planned only later."""
    referenced: set[tuple[str, str]] = set()
    for config in configs:
        try:
            plan = plan_config(config)
        except ConfigError as exc:
            raise ConfigError(config.source, str(exc)) from None
        referenced.update((job.hook.name, job.key) for job in plan.jobs)
        if plan.pending_note:
            last = max(job.iteration for job in plan.jobs)
            garbage.notes.append(
                f"{config.source}: kept every job of iterations 1-{last}, the ones decided so far ({plan.pending_note})"
            )
    return referenced


def find_garbage(work_dir: str, configs: list[SandboxConfig], with_stats_cache: bool) -> Garbage:
    garbage = Garbage(work_dir)
    referenced = referenced_keys(configs, garbage)
    garbage.kept = len(referenced)
    jobs = layout.jobs_root(work_dir)
    if os.path.islink(jobs):
        raise GcRefused(f"{jobs} is a symlink; gc does not follow it")
    removed_dirs: set[str] = set()
    for hook_entry in entries(jobs) if real_dir(jobs) else ():
        if not hook_entry.is_dir(follow_symlinks=False):
            garbage.left.append(f"{hook_entry.path} (not a directory: gc never follows or removes a symlink)")
            continue
        for entry in entries(hook_entry.path):
            if not entry.is_dir(follow_symlinks=False):
                garbage.left.append(f"{entry.path} (not a directory: gc never follows or removes a symlink)")
            elif PARTIAL_RE.fullmatch(entry.name):
                garbage.left.append(f"{entry.path} (a job being written, or a killed one's: its next run removes it)")
            elif KEY_RE.fullmatch(entry.name) and (hook_entry.name, entry.name) not in referenced:
                garbage.removable.append((entry.path, disk_usage(entry.path)))
                removed_dirs.add(os.path.normpath(entry.path))
            elif not KEY_RE.fullmatch(entry.name):
                garbage.left.append(f"{entry.path} (not a job directory sandflow made)")
    garbage.removable.extend(stale_job_files(work_dir, referenced))
    garbage.links = links_into(work_dir, removed_dirs)
    cache = os.path.join(work_dir, STATS_CACHE)
    if real_dir(cache):
        if with_stats_cache:
            garbage.removable.append((cache, disk_usage(cache)))
        else:
            garbage.left.append(f"{cache} ({human(disk_usage(cache))}; --stats-cache removes it wholly)")
    return garbage


def stale_job_files(work_dir: str, referenced: set[tuple[str, str]]) -> list[tuple[str, int]]:
    """logs/<hook>/<key>.log and benchmarks/<hook>/<key>.tsv of keys no config plans (failed jobs' too), of
    built-in and user hooks alike; other logs are the bookkeeping rules' own."""
    stale = []
    for root, suffix in ((layout.logs_root(work_dir), ".log"), (layout.benchmarks_root(work_dir), ".tsv")):
        for hook_entry in entries(root) if real_dir(root) else ():
            hook = hook_entry.name
            if not (hook in HOOKS or is_user_hook_name(hook)) or not hook_entry.is_dir(follow_symlinks=False):
                continue
            for entry in entries(hook_entry.path):
                key, extension = os.path.splitext(entry.name)
                if extension == suffix and KEY_RE.fullmatch(key) and (hook, key) not in referenced:
                    if entry.is_file(follow_symlinks=False):
                        stale.append((entry.path, entry.stat(follow_symlinks=False).st_blocks * 512))
    return stale


def links_into(work_dir: str, removed_dirs: set[str]) -> list[str]:
    """Readable links (pipelines/..., hpo/trial_<N>/pipelines/...) that point at a job directory gc removes."""
    roots = [layout.pipelines_dir(work_dir)]
    hpo = layout.hpo_dir(work_dir)
    if real_dir(hpo):
        roots += [layout.pipelines_dir(entry.path) for entry in entries(hpo) if entry.name.startswith("trial_")]
    found = []
    for root in roots:
        if not real_dir(root):
            continue
        for directory, dirs, files in os.walk(root):  # does not enter symlinked directories
            for name in [*dirs, *files]:
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    target = os.path.normpath(os.path.join(directory, os.readlink(path)))
                    if target in removed_dirs:
                        found.append(path)
    return sorted(found)


def delete(garbage: Garbage) -> None:
    for path in garbage.links:
        os.unlink(path)
    for path, _ in garbage.removable:
        if real_dir(path):
            shutil.rmtree(path)  # refuses a symlink at path, unlinks (never follows) symlinks inside
        else:
            os.unlink(path)


def describe(garbage: Garbage, deleted: bool) -> list[str]:
    lines = [f"work_dir {garbage.work_dir}: {garbage.kept} job(s) planned by the given configs are kept"]
    lines += [f"note: {note}" for note in garbage.notes]
    verb = "removed" if deleted else "would remove"
    lines += [f"  {verb} {path}  {human(size)}" for path, size in garbage.removable]
    if garbage.links:
        lines.append(f"  {verb} {len(garbage.links)} readable link(s) to those job directories")
    lines += [f"  left {item}" for item in garbage.left]
    if not garbage.removable:
        lines.append("nothing to remove")
    elif deleted:
        lines.append(f"freed {human(garbage.total)}")
    else:
        lines.append(f"would free {human(garbage.total)}; run again with --yes to delete")
    return lines


def load_configs(config_files: list[str]) -> dict[str, list[SandboxConfig]]:
    """The configs by the work_dir they use (ConfigError on a bad one, before anything is touched)."""
    by_work_dir: dict[str, list[SandboxConfig]] = {}
    for path in config_files:
        try:
            config = load_config_file(path)
            if config.hpo_config is not None:
                hpo = load_hpo(config.hpo_config)
                if hpo.method == "bayes" and hpo.explicit_trials is None:
                    raise ConfigError(
                        "hpo_config.method",
                        "gc needs the trials of a bayes search: pass <work_dir>/hpo/search.yaml, "
                        "which python -m sandflow.hpo_search writes with every trial so far",
                    )
        except ConfigError as exc:
            raise ConfigError(path, str(exc)) from None
        by_work_dir.setdefault(os.path.normpath(config.work_dir), []).append(config)
    return by_work_dir


def collect(work_dir: str, configs: list[SandboxConfig], delete_now: bool, with_stats_cache: bool) -> list[str]:
    """Find (and with delete_now, remove) what the configs do not plan in work_dir, holding its lock."""
    if not os.path.isdir(work_dir):
        return [f"work_dir {work_dir} does not exist: nothing to remove"]
    try:
        held = hold_lock(work_dir)
    except LockRefused as exc:
        raise GcRefused(str(exc)) from None
    try:
        garbage = find_garbage(work_dir, configs, with_stats_cache)
        if delete_now:
            delete(garbage)
        return describe(garbage, delete_now)
    finally:
        held.release()
        os.close(held.fd)


def only_work_dir(by_work_dir: dict[str, list[SandboxConfig]], work_dir: str | None) -> dict[str, list]:
    if work_dir is None:
        return by_work_dir
    wanted = os.path.normpath(work_dir)
    if wanted not in by_work_dir:
        raise GcRefused(
            f"none of the given configs uses work_dir {work_dir} (they use {', '.join(sorted(by_work_dir))}); "
            "gc removes only what the configs of a work_dir do not plan, so it needs them all"
        )
    return {wanted: by_work_dir[wanted]}
