"""When a config iterates: iter_updater refs into the next iteration, iter_targets checks, the iteration cap.

Iteration N+1 exists in the plan only once iteration N's decision (plan/iterations.py, run as a job)
says the targets are unmet; the decision is named by a digest of iteration N's jobs and targets.
"""

from __future__ import annotations

import re
from typing import Any

from sandflow.config.errors import ConfigError
from sandflow.config.model import SECTIONS, SandboxConfig
from sandflow.config.tree import KeyPath, parse_target
from sandflow.core.keys import digest_of
from sandflow.plan.model import Job
from sandflow.plan.refs import resolve_ref

TARGET_RE = re.compile(r"^\s*(\S+)\s*(==|>=|<=|>|<)\s*(\S+)\s*$")


class IterationSchedule:
    """Reads the planner's iterations (the jobs of each, appended as they are planned); never plans."""

    def __init__(self, config: SandboxConfig, iterations: list[list[Job]]):
        self.config = config
        self.iterations = iterations

    def cap(self) -> int:
        config = self.config
        return config.max_iter_num if config.max_iter_num > 0 else config.max_iter_cap

    def updates(self, previous: list[Job]) -> dict[tuple[str, str], dict[KeyPath, tuple[Job, int, str]]]:
        """iter_updater as input refs of the next iteration's jobs to the previous iteration's outputs."""
        updates: dict[tuple[str, str], dict[KeyPath, tuple[Job, int, str]]] = {}
        for source, target in self.config.iter_updater.items():
            where = f"iter_updater[{source!r}]"
            producer, index = resolve_ref(self.config, source, previous[-1], previous, where)
            pipeline, meta_name, local = target.split(".", 2)
            updates.setdefault((pipeline, meta_name), {})[parse_target(local, where)] = (producer, index, source)
        return updates

    def digest(self, iteration: int) -> str:
        """Names iteration N's decision: its jobs, the targets it is checked against and the cap."""
        material = {
            "jobs": [job.key for job in self.iterations[iteration - 1]],
            "cap": self.cap(),
            "targets": self.config.iter_targets,
            "mode": self.config.iter_targets_mode,
        }
        return digest_of(material)

    def spec(self, iteration: int) -> dict[str, Any]:
        jobs = self.iterations[iteration - 1]
        targets = []
        for position, text in enumerate(self.config.iter_targets):
            match = TARGET_RE.match(text)
            producer, index = resolve_ref(self.config, match.group(1), jobs[-1], jobs, f"iter_targets[{position}]")
            targets.append(
                {
                    "text": text,
                    "context": producer.context_path,
                    "index": index,
                    "op": match.group(2),
                    "value": float(match.group(3)),
                }
            )
        return {
            "iteration": iteration,
            "cap": self.cap(),
            "mode": self.config.iter_targets_mode,
            "targets": targets,
        }

    def check_settings(self) -> None:
        first_iteration = self.iterations[0]
        for position, text in enumerate(self.config.iter_targets):
            where = f"iter_targets[{position}]"
            match = TARGET_RE.match(text) if isinstance(text, str) else None
            if not match:
                raise ConfigError(
                    where, f"{text!r} is not '<pipeline>.<meta_name>.<key> <op> <number>' with op one of == >= <= > <"
                )
            try:
                float(match.group(3))
            except ValueError:
                raise ConfigError(where, f"{match.group(3)!r} is not a number") from None
            resolve_ref(self.config, match.group(1), first_iteration[-1], first_iteration, where)
        for source, target in self.config.iter_updater.items():
            where = f"iter_updater[{source!r}]"
            resolve_ref(self.config, source, first_iteration[-1], first_iteration, where)
            parts = target.split(".") if isinstance(target, str) else []
            if len(parts) < 4 or parts[2] not in SECTIONS or not all(parts):
                raise ConfigError(
                    where, f"{target!r} must be <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>"
                )
            if not any(j.cfg.pipeline == parts[0] and j.cfg.display_name == parts[1] for j in first_iteration):
                raise ConfigError(where, f"{target!r}: no job {parts[0]}.{parts[1]}")
