"""The iteration rules (rules/iterate.smk): after iteration N a checkpoint decides whether N+1 runs
(scripts/decide_iteration.py), and the plan grows by it; a last rule records where the run stopped
(scripts/record_iteration_outcome.py). This adapter holds the planner, the one thing that grows a plan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import job_logging
from sandflow.plan.history import record_planned
from sandflow.plan.iterations import decide, read_decision
from sandflow.plan.planner import Planner
from sandflow.run.run_state import RunState

log = logging.getLogger(__name__)


class IterationRules:
    def __init__(self, state: RunState, planner: Planner):
        self.state = state
        self.planner = planner

    def extend(self, decision_file: Callable[[int, str], str]) -> None:
        """Plan the iterations whose decisions say they run; ``decision_file(n, digest)`` is the
        checkpoint's output for iteration n (a path that does not exist yet while it is undecided)."""
        plan = self.state.plan
        self.planner.extend(plan, lambda n, digest: read_decision(decision_file(n, digest)))
        for job in plan.jobs:  # in place: the rules' resource callables share this mapping
            self.state.by_key.setdefault(job.key, job)
        if self.state.locked:  # a real run, not a dry one
            record_planned(plan)

    def decision_output(self) -> str:
        return layout.decision_path(self.state.work_dir, "{n}", "{digest}")

    def decision_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "iteration_decision", "iter_{n}-{digest}")

    def decision_files(self, decision_file: Callable[[int, str], str]) -> list[str]:
        """Every planned iteration's decision, after planning all that are decided (the last one is
        still to come, or records why the run stopped there)."""
        if not self.state.plan.config.iter_targets:
            return []
        self.extend(decision_file)
        schedule = self.planner.schedule
        return [decision_file(n, schedule.digest(n)) for n in range(1, len(self.planner.iterations) + 1)]

    def outcome(self) -> str | None:
        """The record of where an iterative run stopped, named by its first iteration's decision: a
        changed job, target or cap gives a new name, so Snakemake (which does not rerun a finished job
        for a checkpoint it depends on) rebuilds it, and context_infos.json after it."""
        if not self.state.plan.config.iter_targets:
            return None
        return self.outcome_output().format(digest=self.planner.schedule.digest(1))

    def outcome_output(self) -> str:
        return layout.state_path(self.state.work_dir, "iterations", "outcome-{digest}.json")

    def outcome_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "iteration_outcome")

    def inputs(self, wildcards: Any) -> list[str]:
        return sorted({job.context_path for job in self.planner.iterations[int(wildcards.n) - 1]})

    def spec(self, wildcards: Any) -> dict[str, Any]:
        return self.planner.schedule.spec(int(wildcards.n))


def decision_from_snakemake(snakemake: Any) -> None:
    with job_logging(snakemake.log[0]):
        decision = decide(snakemake.params.spec)
        log.info("%s", decision["reason"])
        for check in decision["targets"]:
            log.info("%s: value %r, %s", check["target"], check["value"], "met" if check["met"] else "not met")
        write_text_atomic(snakemake.output[0], json.dumps(decision, indent=2) + "\n", sole_writer=True)


def outcome_from_snakemake(snakemake: Any) -> None:
    """The last decision says where the run stopped; the record names every decision in order."""
    with job_logging(snakemake.log[0]):
        decisions = []
        for path in snakemake.input:
            with open(path) as handle:
                decisions.append(json.load(handle))
        last = decisions[-1]
        log.info("stopped after iteration %s: %s", last["iteration"], last["reason"])
        outcome = {
            "iterations": last["iteration"],
            "targets_met": last["targets_met"],
            "reason": last["reason"],
            "decisions": [str(path) for path in snakemake.input],
        }
        write_text_atomic(snakemake.output[0], json.dumps(outcome, indent=2) + "\n", sole_writer=True)
