"""The job graph of a sandbox config: each job's sections, edges and key (plan/keys.py), in DJ-Sandbox's order.

Edges come from ``input`` refs, from a value naming a path an earlier job
writes (the latest such writer in DJ-Sandbox's sequential order), and from
RefineRecipeViaKSigmaHook reading the analysis stored under its meta_name.
Iterations are the config's jobs again with ``iter_updater`` refs to the
previous iteration; hpo_config trials are planned in plan/hpo_trials.py.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from sandflow.config.credentials import check_credentials
from sandflow.config.dj_settings import setting_notes
from sandflow.config.errors import ConfigError, describe_value, did_you_mean
from sandflow.config.files import read_yaml_or_json
from sandflow.config.hpo_spec import trials
from sandflow.config.iterate_block import as_written
from sandflow.config.load import check_recipe, check_string_keys
from sandflow.config.model import RECIPE_SUFFIXES, SECTIONS, JobConfig, SandboxConfig
from sandflow.config.tree import KeyPath, get_path, leaves, parse_target, set_path
from sandflow.config.variables import Substitution
from sandflow.core import layout
from sandflow.core.filehash import FileHashCache
from sandflow.core.layout import decision_path
from sandflow.core.paths import guess_kind, normalize
from sandflow.hooks.registry import HOOKS, component_of, missing_requirements
from sandflow.hooks.user_hooks import is_user_hook, planned_user_hook
from sandflow.plan.hpo_trials import check_search, load_search, resolve_metric, trial_patches
from sandflow.plan.iterations import read_decision
from sandflow.plan.keys import OUTPUT_LOCATION_KEYS, key_of
from sandflow.plan.model import Candidate, Job, PathRead, Plan, Ref, Search, Trial, Write
from sandflow.plan.refs import resolve_ref
from sandflow.plan.schedule import IterationSchedule


class Planner:
    def __init__(self, config: SandboxConfig, hash_cache: FileHashCache | None = None):
        self.config = config
        self.work_dir = os.path.normpath(config.work_dir)
        self.hashes = hash_cache or FileHashCache(layout.state_path(self.work_dir, "file-hashes.json"))
        self.jobs: list[Job] = []
        # What earlier jobs write, indexed by normalised path, so that finding a path's writer does not
        # scan every earlier job (planning 1,000 jobs was quadratic): path -> [(job position, write position,
        # job, write)], in planning order.
        self.file_writes: dict[str, list[tuple[int, int, Job, Write]]] = {}
        self.root_writes: dict[str, list[tuple[int, int, Job, Write]]] = {}
        self.iterations: list[list[Job]] = []  # the jobs of each planned iteration
        self.schedule = IterationSchedule(config, self.iterations)

    def add_planned(self, job: Job) -> None:
        position = len(self.jobs)
        self.jobs.append(job)
        for number, write in enumerate(job.writes):
            entry = (position, number, job, write)
            if write.kind == "file":
                for path in {normalize(write.value), normalize(write.published(job.iteration))}:
                    self.file_writes.setdefault(path, []).append(entry)
            if write.iterized:
                self.root_writes.setdefault(normalize(write.publish_root(job.iteration)), []).append(entry)

    # ---- paths written by earlier jobs ------------------------------------------------------

    def writer_candidates(self, value: str) -> list[Candidate]:
        """Earlier jobs' artifacts a path names, latest writer first (exact file match wins)."""
        latest_first = lambda entry: (-entry[0], entry[1])  # noqa: E731
        target = normalize(value)
        exact = sorted(self.file_writes.get(target, ()), key=latest_first)
        if exact:
            _, _, job, write = exact[0]
            return [Candidate(job, write.slot, write.basename)]
        # Upstream writes only inside the iter_<N> directory, so only that one holds a job's artifacts.
        within = []
        root = target
        while True:
            within.extend((entry, root) for entry in self.root_writes.get(root, ()))
            parent = os.path.dirname(root)
            if parent == root:
                break
            root = parent
        within.sort(key=lambda item: latest_first(item[0]))
        return [Candidate(job, write.slot, os.path.relpath(target, root)) for (_, _, job, write), root in within]

    # ---- planning one job -------------------------------------------------------------------

    def plan_job(
        self,
        cfg: JobConfig,
        iteration: int,
        current: list[Job],
        updates: dict[KeyPath, tuple[Job, int, str]] | None = None,
        patches: dict[str, Any] | None = None,
        recipe_patch: Callable[[Job], None] | None = None,
    ) -> Job:
        """One job; ``updates`` are iter_updater refs to the previous iteration (they override input and
        local), ``patches`` an hpo trial's values (`local` patches that override the config's),
        ``recipe_patch`` sets an hpo trial's recipe op arguments (plan/hpo_trials.py)."""
        hook = planned_user_hook(cfg.hook, f"{cfg.where}.hook") if is_user_hook(cfg.hook) else HOOKS.get(cfg.hook)
        if hook is None:
            raise ConfigError(f"{cfg.where}.hook", f"unknown hook {cfg.hook!r}{did_you_mean(cfg.hook, HOOKS)}")
        job = Job(cfg=cfg, hook=hook, iteration=iteration, order=len(current), work_dir=self.work_dir)

        # `input`: parse targets and resolve refs first, so whole-section targets are known.
        ref_targets: dict[KeyPath, tuple[Job, int, str]] = {}
        for target_text, ref_text in cfg.inputs.items():
            where = f"{cfg.where}.input[{target_text!r}]"
            target = parse_target(target_text, where)
            producer, index = resolve_ref(self.config, ref_text, job, current, where)
            ref_targets[target] = (producer, index, ref_text)
        ref_targets.update(updates or {})

        # Sections: inline mappings, recipe files, or paths an earlier job writes.
        for section in SECTIONS:
            value = copy.deepcopy(getattr(cfg, section))
            where = f"{cfg.where}.{section}"
            if (section,) in ref_targets:
                producer, index, text = ref_targets.pop((section,))
                job.section_sources[section] = Ref((section,), producer, index, text)
                job.sections[section] = None
            elif isinstance(value, str):
                candidates = self.writer_candidates(value)
                if candidates:
                    job.section_sources[section] = PathRead((section,), candidates, value)
                    job.sections[section] = None
                else:
                    job.sections[section] = self.load_section_file(value, where)
            elif value is None or isinstance(value, dict):
                job.sections[section] = value
            else:
                raise ConfigError(
                    where, f"must be a mapping or a path to a .yaml/.json file, got {type(value).__name__}"
                )

        # `local` patches (before input, as upstream); deferred where the section is known only at run time.
        for target_text, value in {**cfg.local, **(patches or {})}.items():
            where = f"{cfg.where}.local[{target_text!r}]"
            target = parse_target(target_text, where)
            if target[0] in job.section_sources:
                job.deferred_local[target_text] = value
            elif len(target) == 1:
                job.sections[target[0]] = copy.deepcopy(value)
            else:
                if job.sections.get(target[0]) is None:
                    job.sections[target[0]] = {}
                set_path(job.sections, target, copy.deepcopy(value), where)
        if recipe_patch is not None:
            recipe_patch(job)

        for section in SECTIONS:
            check_string_keys(job.sections.get(section), f"{cfg.where}.{section}")
        check_credentials(job.sections, cfg.where)
        check_recipe(
            job.sections.get("dj_configs"),
            f"{cfg.where}.dj_configs",
            cfg.dj_configs if isinstance(cfg.dj_configs, str) and "dj_configs" not in job.section_sources else None,
        )
        for place, note in setting_notes(job.sections.get("dj_configs")):  # said before the run (Plan.pending_note)
            text = f"{cfg.where}.dj_configs.{place}: {note}"
            if text not in self.config.notes:  # once, however many iterations or trials plan the job
                self.config.notes.append(text)

        # Component type (extra_configs.type) is checked now.
        if hook.components is not None:
            extra = job.sections.get("extra_configs")
            kind = extra.get("type") if isinstance(extra, dict) else None
            if kind is None:
                raise ConfigError(
                    f"{cfg.where}.extra_configs.type",
                    f"{hook.name} needs a component type; one of: {', '.join(hook.components)}",
                )
            if not isinstance(kind, str):
                raise ConfigError(
                    f"{cfg.where}.extra_configs.type",
                    f"must name one {hook.name} type, got {describe_value(kind)}; one of: {', '.join(hook.components)}",
                )
            if kind not in hook.components:
                raise ConfigError(
                    f"{cfg.where}.extra_configs.type",
                    f"unknown {hook.name} type {kind!r}{did_you_mean(str(kind), hook.components)}; known: {', '.join(hook.components)}",
                )
            job.component = kind
        _, component = component_of(hook, job.sections.get("extra_configs"))
        job.n_outputs = component.n_outputs if component is not None else hook.n_outputs
        if cfg.outputs is not None and job.n_outputs is not None and len(cfg.outputs) != job.n_outputs:
            raise ConfigError(
                f"{cfg.where}.output",
                f"names {len(cfg.outputs)} output(s) but {hook.name}"
                f"{' ' + repr(job.component) if job.component else ''} returns {job.n_outputs}",
            )

        # Remaining input refs patch leaves of the sections.
        for target, (producer, index, text) in ref_targets.items():
            job.refs.append(Ref(target, producer, index, text))
            if target[0] not in job.section_sources:
                if job.sections.get(target[0]) is None:
                    job.sections[target[0]] = {}
                set_path(job.sections, target, {"$ref": text}, f"{cfg.where}.input[{'.'.join(target)!r}]")

        self.collect_writes(job)
        self.collect_reads(job)
        if hook.reads_same_meta_name_analysis:
            self.link_analysis(job, current)
        job.deps = self.dependencies(job, current)
        job.missing = missing_requirements(hook, job.sections.get("dj_configs"), job.sections.get("extra_configs"))
        job.key = key_of(job, self.hashes)
        return job

    def load_section_file(self, value: str, where: str) -> dict[str, Any] | None:
        if not os.path.exists(value):
            raise ConfigError(where, f"file not found: {value} (relative paths are resolved against {os.getcwd()})")
        if not value.endswith(RECIPE_SUFFIXES) or not os.path.isfile(value):
            raise ConfigError(where, f"{value} must be a .yaml, .yml or .json file")
        try:
            loaded = read_yaml_or_json(value)
        except ConfigError as exc:
            raise ConfigError(where, f"{value}: {exc.message}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(where, f"{value} must hold a mapping, not a {type(loaded).__name__}")
        return Substitution(self.config.variables).tree(loaded, where, source=value)

    def collect_writes(self, job: Job) -> None:
        for dotted in job.hook.writes:
            target = tuple(dotted.split("."))
            if target[0] in job.section_sources:
                continue  # recorded by the job itself at run time
            value = get_path(job.sections, target)
            iterized = target[-1] == "export_path"
            values = value if isinstance(value, list) else [value]
            if not all(item is None or isinstance(item, str) and item.strip() for item in values):
                problem = (
                    "must not be empty"
                    if value == ""
                    else f"must be a path or a list of paths, got {describe_value(value)}"
                )
                raise ConfigError(f"{job.where}.{dotted}", problem)
            for position, item in enumerate(values):
                if isinstance(item, str):
                    sub = target + (position,) if isinstance(value, list) else target
                    job.writes.append(Write(sub, item, guess_kind(item), iterized))

    def collect_reads(self, job: Job) -> None:
        """Path edges, external files and required inputs, over the static sections."""
        write_targets = {w.target for w in job.writes} | {tuple(d.split(".")) for d in job.hook.writes}
        ref_targets = {r.target for r in job.refs}
        for section in SECTIONS:
            tree = job.sections.get(section)
            if tree is None:
                continue
            for path, value in leaves(tree, (section,)):
                if (
                    not isinstance(value, str)
                    or not value
                    or any(path[: len(t)] == t for t in write_targets | ref_targets)
                ):
                    continue
                if any(part in OUTPUT_LOCATION_KEYS for part in path if isinstance(part, str)):
                    continue
                candidates = self.writer_candidates(value)
                if candidates:
                    job.path_reads.append(PathRead(path, candidates, value))
        for dotted in job.hook.required_paths:
            target = tuple(dotted.split("."))
            if target[0] in job.section_sources or target in ref_targets:
                continue
            value = get_path(job.sections, target)
            where = f"{job.where}.{dotted}"
            if value is None:
                raise ConfigError(where, f"{job.hook.name} needs {dotted.split('.', 1)[1]}")
            if dotted in job.hook.writes or any(r.target == target for r in job.path_reads):
                continue
            if isinstance(value, str) and not os.path.exists(value):
                raise ConfigError(
                    where,
                    f"file not found: {value} (no earlier job writes it either; relative paths are resolved against {os.getcwd()})",
                )

    def link_analysis(self, job: Job, current: list[Job]) -> None:
        analysers = [
            j
            for j in current
            if j.cfg.pipeline == job.cfg.pipeline
            and j.cfg.meta_name == job.cfg.meta_name
            and j.hook.name == "ProbeViaAnalyzerHook"
        ]
        if not analysers:
            raise ConfigError(
                f"{job.where}.meta_name",
                f"{job.hook.name} refines from the analysis of the earlier "
                f"ProbeViaAnalyzerHook with the same meta_name, and there is none named {job.cfg.meta_name!r} in pipeline {job.cfg.pipeline!r}",
            )
        job.linked["analysis"] = analysers[-1]

    def dependencies(self, job: Job, current: list[Job]) -> list[Job]:
        deps: dict[int, Job] = {}
        for ref in job.refs:
            deps[id(ref.job)] = ref.job
        for source in [*job.section_sources.values(), *job.path_reads]:
            for upstream in source.jobs:
                deps[id(upstream)] = upstream
        for linked in job.linked.values():
            deps[id(linked)] = linked
        _, component = component_of(job.hook, job.sections.get("extra_configs"))
        follows_previous = self.config.sequential or (component is not None and component.follows_previous)
        if follows_previous and current:
            job.after = current[-1]
            deps[id(job.after)] = job.after
        return list(deps.values())

    # ---- the whole config -------------------------------------------------------------------

    def plan(self) -> Plan:
        if self.config.hpo_config is not None:
            return self.plan_search()
        self.plan_iteration(1)
        with as_written(self.config.written_as):
            self.schedule.check_settings()
        plan = Plan(self.config, self.work_dir, self.jobs, self.hashes)
        self.extend(plan, lambda n, digest: read_decision(decision_path(self.work_dir, n, digest)))
        return plan

    def plan_iteration(self, iteration: int) -> None:
        updates = self.schedule.updates(self.iterations[-1]) if self.iterations else {}
        current: list[Job] = []
        for cfg in self.config.jobs():
            job = self.plan_job(cfg, iteration, current, updates.get((cfg.pipeline, cfg.display_name), {}))
            current.append(job)
            self.add_planned(job)
        self.iterations.append(current)

    def extend(self, plan: Plan, decision_of: Callable[[int, str], bool | None]) -> None:
        """Plan the iterations known now.

        Without iter_targets every iteration is known. With them, iteration N+1 is planned when
        ``decision_of(N, digest)`` says iteration N missed its targets (None: not decided yet).
        """
        cap = self.schedule.cap()
        plan.iteration_note = ""
        while len(self.iterations) < cap:
            last = len(self.iterations)
            if self.config.iter_targets:
                decided = decision_of(last, self.schedule.digest(last))
                if decided is None:
                    plan.iteration_note = (
                        f"iterations {last + 1}-{cap} run only while the targets are unmet; "
                        f"they are planned once iteration {last}'s results are checked"
                    )
                    break
                if not decided:
                    break
            self.plan_iteration(last + 1)

    def plan_search(self) -> Plan:
        """hpo_config's grid or random trials, each the config's jobs with its values patched in (plan/hpo_trials.py)."""
        hpo = load_search(self.config)
        search = Search(hpo)
        for number, assignment in enumerate(trials(hpo), 1):
            patches, recipes = trial_patches(hpo, assignment)
            current: list[Job] = []
            for cfg in self.config.jobs():
                job = self.plan_job(
                    cfg,
                    1,
                    current,
                    patches=patches.get((cfg.pipeline, cfg.display_name)),
                    recipe_patch=recipes if recipes.parameters else None,
                )
                job.trial = number
                current.append(job)
                self.add_planned(job)
            if number == 1:
                check_search(hpo, current)
                recipes.check_every_op_found()
            producer, index = resolve_metric(self.config, hpo.metric, current)
            search.trials.append(Trial(number, assignment, producer, index))
        return Plan(self.config, self.work_dir, self.jobs, self.hashes, search=search)


def plan_config(config: SandboxConfig, hash_cache: FileHashCache | None = None) -> Plan:
    return Planner(config, hash_cache).plan()
