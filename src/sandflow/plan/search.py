"""hpo_config's grid and random trials: each trial is the config's jobs with its values as ``local`` patches.

Trials share every job a parameter does not reach (same key), so ``snakemake -n`` lists them all and a
trial costs only the jobs its values change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandflow.config.errors import ConfigError, suggest
from sandflow.config.hpo_spec import HpoConfig, load_hpo, trials
from sandflow.plan.model import Job, Plan, Search, Trial

if TYPE_CHECKING:
    from sandflow.plan.planner import Planner


def plan_search(planner: Planner) -> Plan:
    """hpo_config's grid or random trials, each the config's jobs with its values patched in."""
    hpo = load_hpo(planner.config.hpo_config)
    if planner.config.iter_targets or planner.config.iter_updater or planner.config.max_iter_num != 1:
        raise ConfigError(
            "hpo_config",
            "a search runs each trial once: it cannot be combined with max_iter_num, iter_targets or iter_updater",
        )
    search = Search(hpo)
    for number, assignment in enumerate(trials(hpo), 1):
        patches: dict[tuple[str, str], dict[str, Any]] = {}
        for parameter in hpo.parameters:
            patches.setdefault((parameter.pipeline, parameter.meta_name), {})[parameter.local] = assignment[
                parameter.name
            ]
        current: list[Job] = []
        for cfg in planner.config.jobs():
            job = planner.plan_job(cfg, 1, current, patches=patches.get((cfg.pipeline, cfg.display_name)))
            job.trial = number
            current.append(job)
            planner.add_planned(job)
        if number == 1:
            check_search(hpo, current)
        producer, index = planner.resolve_ref(hpo.metric, current[-1], current, "hpo_config.metric.name")
        search.trials.append(Trial(number, assignment, producer, index))
    return Plan(planner.config, planner.work_dir, planner.jobs, planner.hashes, planner=planner, search=search)


def check_search(hpo: HpoConfig, jobs: list[Job]) -> None:
    names = {(job.cfg.pipeline, job.cfg.display_name) for job in jobs}
    for parameter in hpo.parameters:
        if (parameter.pipeline, parameter.meta_name) not in names:
            known = [f"{p}.{m}" for p, m in sorted(names)]
            raise ConfigError(
                f"hpo_config.parameters.{parameter.name}",
                f"no job {parameter.pipeline}.{parameter.meta_name}{suggest(f'{parameter.pipeline}.{parameter.meta_name}', known)}",
            )
