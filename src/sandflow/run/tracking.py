"""The wandb rule (rules/track.smk): after context_infos.json, one wandb run per pipeline (scripts/track_wandb.py,
report/tracking.py)."""

from __future__ import annotations

from typing import Any

from sandflow.core import layout
from sandflow.core.jobio import job_logging
from sandflow.core.keys import digest_of
from sandflow.report.tracking import track
from sandflow.run.hpo import HpoRules
from sandflow.run.run_state import RunState
from sandflow.run.specs import assembly_spec


class TrackingRules:
    def __init__(self, state: RunState, hpo: HpoRules):
        self.state = state
        self.hpo = hpo

    def spec(self, wildcards: Any = None) -> dict[str, Any]:
        config = self.state.plan.config
        settings = {"project": config.project_name, "experiment": config.experiment_name, **(config.wandb or {})}
        trials = self.hpo.spec()["trials"] if self.state.plan.search else []
        return {**assembly_spec(self.state.plan), "wandb": settings, "trials": trials}

    def record(self) -> str | None:
        """Named by the wandb settings, so that changing them logs the runs again."""
        wandb = self.state.plan.config.wandb
        return None if wandb is None else layout.tracking_record(self.state.work_dir, digest_of(wandb))

    def log(self) -> str:
        return layout.rule_log(self.state.work_dir, "track_wandb")


def main_from_snakemake(snakemake: Any) -> None:
    with job_logging(snakemake.log[0]) as log:
        for run in track(snakemake.params.spec, snakemake.output[0]):
            log.info("wandb run %s (%s): %d keys", run["name"], run["id"], len(run["keys"]))
