"""Why a job will run: its key material against the last finished job of the same name.

A job's key is a digest, so two keys say only *that* something changed. To say *what*, every real run
records each planned job's key material under ``<work_dir>/.sandflow/planned/<name>/<key>.json``, where
the name is (pipeline, meta_name, hook, iteration, trial). ``sandflow check`` then compares a job that
will run with the newest finished job of its name: config values by their path (``dj_configs.process[0].
text_length_filter.min_len: 10 -> 20``), a file by its content, an input by the upstream job it reads.
Runs from before these records (or a job planned by no run yet) are reported as new.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sandflow.config.tree import KeyPath, get_path, is_placeholder, leaves
from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.core.keys import canonical_json, digest_of
from sandflow.plan.keys import key_material
from sandflow.plan.model import Job, Plan

# At most this many changed values on a job's line; the rest are counted.
SHOWN_CHANGES = 3


def name_of(job: Job) -> list[Any]:
    return [job.cfg.pipeline, job.cfg.display_name, job.hook.name, job.iteration, job.trial]


def records_dir(plan: Plan, job: Job) -> Path:
    return Path(layout.state_path(plan.work_dir, "planned", digest_of(name_of(job))))


def record_planned(plan: Plan) -> None:
    """Keep each planned job's key material (once per name and key) for later explanations."""
    for job in plan.jobs:
        path = records_dir(plan, job) / f"{job.key}.json"
        if not path.exists():
            record = {"name": name_of(job), "key": job.key, "material": key_material(job, plan.hashes)}
            write_text_atomic(path, canonical_json(record))


def last_finished(plan: Plan, job: Job) -> dict[str, Any] | None:
    """The newest recorded job of the same name, other than this one, whose job directory is finished."""
    directory = records_dir(plan, job)
    if not directory.is_dir():
        return None
    records = sorted(directory.glob("*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in records:
        key = path.stem
        if key != job.key and os.path.exists(
            os.path.join(layout.job_dir(plan.work_dir, job.hook.name, key), "context.json")
        ):
            return json.loads(path.read_text())
    return None


def place(path: KeyPath) -> str:
    """sections.dj_configs.process.0.x -> dj_configs.process[0].x"""
    text = ""
    for part in path[1:] if path[:1] == ("sections",) else path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


class Explainer:
    """Turns the difference of two key materials into the config's own words."""

    def __init__(self, plan: Plan):
        self.plan = plan
        # by key, the first job with it: its number in `sandflow check`'s list, and its name
        self.names: dict[str, str] = {}
        for number, job in enumerate(plan.jobs, start=1):
            self.names.setdefault(job.key, f"job {number} ({job.cfg.pipeline}.{job.cfg.display_name}")

    def upstream(self, key: str) -> str:
        if key not in self.names:
            return f"job {key}"
        done = os.path.exists(self.plan.by_key[key].context_path)
        return f"{self.names[key]}, {'cached' if done else 'will run'})"

    def change(self, job: Job, path: KeyPath, old: Any, new: Any) -> str:
        where = place(path)
        if old is None:
            return f"{where} added: {short(new)}"
        if new is None:
            return f"{where} removed (was {short(old)})"
        if is_placeholder(new) and is_placeholder(old) and next(iter(new)) == next(iter(old)):
            kind, value = next(iter(new.items()))
            if kind == "$ref":
                return f"{where} reads a changed {self.upstream(value[0])}"
            if kind == "$path":
                return f"{where} reads files of a changed {self.upstream(value[0][0])}"
            if kind == "$file":
                return f"{where}: the content of {get_path(job.sections, path[1:])} changed"
            if kind == "$function":
                return f"{where}: the module of {value[0]} changed"
        if where in ("linked", "after") or where.startswith("linked."):
            return f"{where}: reads a changed {self.upstream(new)}"
        return f"{where}: {short(old)} -> {short(new)}"

    def why(self, job: Job) -> str:
        """'cached', or why the job will run."""
        if os.path.exists(job.context_path):
            return "cached"
        before = last_finished(self.plan, job)
        if before is None:
            return "will run: new (no finished job of this name in work_dir)"
        planned = dict(leaves(json.loads(canonical_json(key_material(job, self.plan.hashes)))))
        old = dict(leaves(before["material"]))
        changes = [
            self.change(job, path, old.get(path), planned.get(path))
            for path in sorted({*planned, *old}, key=str)
            if planned.get(path) != old.get(path)
        ]
        if not changes:
            return f"will run: its key changed from {before['key']} (no recorded value differs)"
        more = f"; and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
        return f"will run: changed since {before['key']}: {'; '.join(changes[:SHOWN_CHANGES])}{more}"
