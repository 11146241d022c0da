"""The hpo_config rules (rules/hpo.smk): grid and random trials are jobs of the graph (plan/planner.py); a rule
ranks them by the metric (scripts/hpo_summary.py) into <work_dir>/hpo/best.json, trials.csv and metric.png."""

from __future__ import annotations

from typing import Any

from sandflow.core import layout
from sandflow.core.jobio import job_logging
from sandflow.core.keys import digest_of
from sandflow.report.hpo_results import summarise
from sandflow.run.run_state import RunState


class HpoRules:
    def __init__(self, state: RunState):
        self.state = state

    def spec(self, wildcards: Any = None) -> dict[str, Any]:
        search = self.state.plan.search
        assert search is not None  # the rules exist only for a search (rules/hpo.smk)
        return {
            "metric": search.hpo.metric,
            "goal": search.hpo.goal,
            # only when set: the spec's digest names the summary, and a search without a target keeps its name
            **({"target": search.hpo.target} if search.hpo.target is not None else {}),
            "parameters": [parameter.name for parameter in search.hpo.parameters],
            "trials": [
                {"number": t.number, "values": t.values, "context": t.metric_job.context_path, "index": t.metric_index}
                for t in search.trials
            ],
        }

    def spec_output(self) -> str:
        return layout.state_path(self.state.work_dir, "hpo", "{digest}.json")

    def spec_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "hpo_spec_record", "{digest}")

    def inputs(self) -> dict[str, list[str] | str]:
        """The metric jobs of every trial, and a record named by the spec (a changed goal reruns the summary)."""
        spec = self.spec()
        return {
            "metrics": sorted({trial["context"] for trial in spec["trials"]}),
            "spec": self.spec_output().format(digest=digest_of(spec)),
        }

    def outputs(self) -> dict[str, str]:
        return layout.hpo_results(self.state.work_dir)

    def summary_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "hpo_summary")


def main_from_snakemake(snakemake: Any) -> None:
    with job_logging(snakemake.log[0]) as log:
        spec = snakemake.params.spec
        record = summarise(spec, snakemake.output.best, snakemake.output.table, snakemake.output.plot)
        if record["trial"] is None:
            log.warning("no trial produced a number for %s", spec["metric"])
        else:
            log.info(
                "best of %d trials: trial %d, %s = %r with %s",
                record["trials"],
                record["trial"],
                spec["metric"],
                record["metric"]["value"],
                record["params"],
            )
        if "target" in record:
            reached_by = record["target"]["reached_by"]
            log.info(
                "metric.target %r: %s",
                spec["target"],
                "no trial reached it" if reached_by is None else f"first reached by trial {reached_by}",
            )
