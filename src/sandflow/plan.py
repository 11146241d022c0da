"""The job graph of a sandbox config: jobs, their edges and their Merkle keys.

A job's key is sha256 over canonical JSON of what produces its result: the
hook (and component) with their versions and the versions of the libraries
that shape it; its dj_configs / extra_configs after file loading and ``local``
patches, where each ``input`` target is replaced by {upstream key, output
index}, each path an earlier job writes by {writer key, slot, relative path},
each external file by its sha256, and each path the job writes by its file
name only. Publishing and run-time settings (export directories, np,
work_dir, project/experiment names) stay out, so the same work under another
export_path, or in another iteration, is a cache hit.

Edges come from ``input`` refs, from a value naming a path an earlier job
writes (the latest such writer in DJ-Sandbox's sequential order), and from
RefineRecipeViaKSigmaHook reading the analysis stored under its meta_name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any, Callable, Iterator

from sandflow.config import (
    RECIPE_SUFFIXES,
    SECTIONS,
    ConfigError,
    JobConfig,
    SandboxConfig,
    check_recipe,
    check_string_keys,
    describe_value,
    did_you_mean,
    read_yaml_or_json,
    suggest,
)
from sandflow.filehash import FileHashCache
from sandflow.hooks.base import Hook
from sandflow.hooks.llm_messages import user_module_file
from sandflow.hooks.registry import HOOKS, component_of, missing_requirements
from sandflow.hpo import HpoConfig, load_hpo, trials
from sandflow.iterations import decision_path, read_decision

KEY_LENGTH = 16
# Top-level section keys that only say where or how fast, never what: kept out of keys.
RUNTIME_KEYS = frozenset({"np", "work_dir", "project_name", "experiment_name", "auto_op_parallelism"})
# Keys that name where something is written, in any hook's sections, or (data_root_path) a root that paths
# are made relative to without being read: never read edges or hashed files, kept literally in keys.
OUTPUT_LOCATION_KEYS = frozenset({"export_path", "work_dir", "path_k_sigma_recipe", "path_model_feedback_recipe",
                                  "data_root_path"})
TARGET_RE = re.compile(r"^\s*(\S+)\s*(==|>=|<=|>|<)\s*(\S+)\s*$")

Path_ = tuple[str | int, ...]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def guess_kind(path: str) -> str:
    """DJ-Sandbox's rule: a basename with a dot (not leading) is a file, anything else a directory."""
    if path.endswith(("/", os.sep)):
        return "dir"
    base = os.path.basename(path.rstrip("/"))
    return "file" if "." in base and not base.startswith(".") else "dir"


def iterize(path: str, iteration: int) -> str:
    """Insert DJ-Sandbox's iter_<N> directory: a/b/c.jsonl -> a/b/iter_N/c.jsonl, a/b -> a/b/iter_N."""
    if guess_kind(path) == "file":
        return os.path.join(os.path.dirname(path), f"iter_{iteration}", os.path.basename(path))
    return os.path.join(path.rstrip("/"), f"iter_{iteration}")


def normalize(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


@lru_cache(maxsize=None)
def library_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def parse_target(text: str, where: str) -> Path_:
    """'dj_configs.a.b' -> ('dj_configs', 'a', 'b'); the first part must name a section."""
    parts = tuple(text.split("."))
    if parts[0] not in SECTIONS or any(not p for p in parts):
        raise ConfigError(where, f"target {text!r} must be 'dj_configs' or 'extra_configs', optionally followed by .<dotted key>")
    return parts


def get_path(tree: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return None
    return tree


def set_path(tree: dict[str, Any], path: Path_, value: Any, where: str) -> None:
    """Set tree[path] = value, creating mappings on the way (upstream patches nested keys the same way)."""
    node: Any = tree
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(where, f"cannot set {'.'.join(map(str, path))}: {'.'.join(map(str, path[:depth]))} is not a mapping")
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    if isinstance(node, list) and isinstance(path[-1], int):
        node[path[-1]] = value
    elif isinstance(node, dict):
        node[path[-1]] = value
    else:
        raise ConfigError(where, f"cannot set {'.'.join(map(str, path))}: its parent is not a mapping")


def is_placeholder(value: Any) -> bool:
    """A value the planner put in place of a ref, a path edge, a write or a file hash."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("$")


def leaves(tree: Any, prefix: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """(path, value) of every leaf; planner placeholders count as leaves."""
    if isinstance(tree, dict) and not is_placeholder(tree):
        for key, value in tree.items():
            yield from leaves(value, prefix + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from leaves(value, prefix + (index,))
    else:
        yield prefix, tree


@dataclass(frozen=True)
class Write:
    """A path a job writes; at run time it is redirected to <job_dir>/<slot>/."""

    target: Path_
    value: str
    kind: str  # "file" | "dir"
    iterized: bool

    @property
    def slot(self) -> str:
        return ".".join(map(str, self.target))

    @property
    def basename(self) -> str:
        return os.path.basename(self.value.rstrip("/")) if self.kind == "file" else ""

    def published(self, iteration: int) -> str:
        return iterize(self.value, iteration) if self.iterized else self.value

    def publish_root(self, iteration: int) -> str:
        """The directory whose files this write's slot mirrors."""
        path = self.published(iteration)
        return os.path.dirname(path) if self.kind == "file" else path


@dataclass
class Job:
    cfg: JobConfig
    hook: Hook
    iteration: int
    order: int
    work_dir: str
    component: str | None = None
    key: str = ""
    sections: dict[str, Any] = field(default_factory=dict)  # static view (None: known at run time)
    section_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    deferred_local: dict[str, Any] = field(default_factory=dict)
    refs: list[dict[str, Any]] = field(default_factory=list)
    path_reads: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    deps: list["Job"] = field(default_factory=list)
    linked: dict[str, "Job"] = field(default_factory=dict)
    after: "Job | None" = None  # the previous job, when this one must follow it
    trial: int | None = None  # the hpo_config trial it belongs to (not in its key: trials share jobs)
    n_outputs: int | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.cfg.where

    @property
    def job_dir(self) -> str:
        return os.path.join(self.work_dir, "jobs", self.hook.name, self.key)

    @property
    def context_path(self) -> str:
        return os.path.join(self.job_dir, "context.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.work_dir, "logs", self.hook.name, f"{self.key}.log")

    def output_names(self) -> list[str] | None:
        if self.cfg.outputs is not None:
            return list(self.cfg.outputs)
        return None if self.n_outputs is None else [str(i) for i in range(self.n_outputs)]

    def output_index(self, name: str, where: str) -> int:
        if self.cfg.outputs is not None:
            if name in self.cfg.outputs:
                return self.cfg.outputs.index(name)
            raise ConfigError(where, f"{self.describe()} has no output {name!r} (its outputs: {', '.join(self.cfg.outputs)})"
                              + did_you_mean(name, self.cfg.outputs))
        match = re.fullmatch(r"(?:res_(\d+)|(\d+))", name)
        if not match:
            raise ConfigError(where, f"{self.describe()} names no outputs, so refer to them as 0..n-1 or res_1..res_n, not {name!r}")
        index = int(match.group(1)) - 1 if match.group(1) else int(match.group(2))
        if index < 0 or (self.n_outputs is not None and index >= self.n_outputs):
            raise ConfigError(where, f"{self.describe()} has {self.n_outputs} output(s); {name!r} is out of range")
        return index

    def describe(self) -> str:
        return f"job {self.cfg.pipeline}.{self.cfg.display_name} ({self.where}, {self.hook.name})"


@dataclass
class Trial:
    number: int
    values: dict[str, Any]  # parameter name -> value
    metric_job: Job
    metric_index: int


@dataclass
class Search:
    hpo: HpoConfig
    trials: list[Trial] = field(default_factory=list)


@dataclass
class Plan:
    config: SandboxConfig
    work_dir: str
    jobs: list[Job]
    hashes: FileHashCache
    pending_note: str = ""
    planner: "Planner | None" = field(default=None, repr=False)  # grows the plan by later iterations
    search: "Search | None" = None  # hpo_config's trials

    @property
    def by_key(self) -> dict[str, Job]:
        first: dict[str, Job] = {}
        for job in self.jobs:
            first.setdefault(job.key, job)
        return first

    @property
    def context_infos_path(self) -> str:
        return os.path.join(self.work_dir, "context_infos.json")

    def unique_jobs(self) -> list[Job]:
        return list(self.by_key.values())


class Planner:
    def __init__(self, config: SandboxConfig, hash_cache: FileHashCache | None = None):
        self.config = config
        self.work_dir = os.path.normpath(config.work_dir)
        self.hashes = hash_cache or FileHashCache(os.path.join(self.work_dir, ".sandflow", "file-hashes.json"))
        self.jobs: list[Job] = []
        # What earlier jobs write, indexed by normalised path, so that finding a path's writer does not
        # scan every earlier job (planning 1,000 jobs was quadratic): path -> [(job position, write position,
        # job, write)], in planning order.
        self.file_writes: dict[str, list[tuple[int, int, Job, Write]]] = {}
        self.root_writes: dict[str, list[tuple[int, int, Job, Write]]] = {}
        self.iterations: list[list[Job]] = []  # the jobs of each planned iteration

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

    # ---- refs -------------------------------------------------------------------------------

    def resolve_ref(self, text: str, job: Job, current: list[Job], where: str) -> tuple[Job, int]:
        """'<pipeline>.<meta_name>.<key>' or '-1.<key>' -> (producer job, output index)."""
        if not isinstance(text, str):
            raise ConfigError(where, f"a reference must be a string, got {type(text).__name__}")
        if text.startswith("-1."):
            if not current:
                raise ConfigError(where, f"{text!r}: there is no job before this one")
            producer = current[-1]
            return producer, producer.output_index(text[3:], where)
        parts = text.split(".", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(where, f"{text!r} is not a reference: use <pipeline>.<meta_name>.<output> or -1.<output>")
        pipeline, meta_name, name = parts
        names = [name for name, _ in self.config.pipelines]
        if pipeline not in names:
            raise ConfigError(where, f"{text!r}: no pipeline {pipeline!r}{suggest(pipeline, names)}")
        earlier = [j for j in current if j.cfg.pipeline == pipeline and j.cfg.display_name == meta_name]
        if not earlier:
            later = [j for j in self.config.jobs() if j.pipeline == pipeline and j.display_name == meta_name]
            if later and later[0] is job.cfg:
                raise ConfigError(where, f"{text!r} refers to this job's own output; a reference must point to an earlier job")
            if later:
                own = f"{job.cfg.pipeline}.{job.cfg.display_name}."
                cycle = any(isinstance(ref, str) and ref.startswith(own) for ref in later[0].inputs.values())
                raise ConfigError(where, f"{text!r}: job {pipeline}.{meta_name} runs after this one ({later[0].where})"
                                  f"{' and reads its output in turn, a cycle' if cycle else ''}; a reference must point to an earlier job")
            metas = {j.display_name for j in self.config.jobs() if j.pipeline == pipeline}
            raise ConfigError(where, f"{text!r}: pipeline {pipeline!r} has no job with meta_name {meta_name!r}{suggest(meta_name, metas)}")
        if len(earlier) == 1:
            return earlier[0], earlier[0].output_index(name, where)
        # Several jobs share the meta_name (the k-sigma habit): take the one that has this output.
        having = []
        for candidate in earlier:
            try:
                having.append((candidate, candidate.output_index(name, where)))
            except ConfigError:
                continue
        if len(having) == 1:
            return having[0]
        if not having:
            raise ConfigError(where, f"{text!r}: none of the {len(earlier)} jobs named {pipeline}.{meta_name} has an output {name!r}")
        places = ", ".join(c.where for c, _ in having)
        raise ConfigError(where, f"{text!r} is ambiguous: {len(having)} jobs named {pipeline}.{meta_name} have an output {name!r} ({places}); give them distinct meta_names")

    # ---- paths written by earlier jobs ------------------------------------------------------

    def writer_candidates(self, value: str) -> list[dict[str, Any]]:
        """Earlier jobs' artifacts a path names, latest writer first (exact file match wins)."""
        latest_first = lambda entry: (-entry[0], entry[1])  # noqa: E731
        target = normalize(value)
        exact = sorted(self.file_writes.get(target, ()), key=latest_first)
        if exact:
            _, _, job, write = exact[0]
            return [{"job": job, "slot": write.slot, "rel": write.basename}]
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
        return [{"job": job, "slot": write.slot, "rel": os.path.relpath(target, root)}
                for (_, _, job, write), root in within]

    # ---- planning one job -------------------------------------------------------------------

    def plan_job(self, cfg: JobConfig, iteration: int, current: list[Job],
                 updates: dict[Path_, tuple[Job, int, str]] | None = None, patches: dict[str, Any] | None = None) -> Job:
        """One job; ``updates`` are iter_updater refs to the previous iteration (they override input and
        local), ``patches`` an hpo trial's values (`local` patches that override the config's)."""
        hook = HOOKS.get(cfg.hook)
        if hook is None:
            raise ConfigError(f"{cfg.where}.hook", f"unknown hook {cfg.hook!r}{did_you_mean(cfg.hook, HOOKS)}")
        job = Job(cfg=cfg, hook=hook, iteration=iteration, order=len(current), work_dir=self.work_dir)

        # `input`: parse targets and resolve refs first, so whole-section targets are known.
        ref_targets: dict[Path_, tuple[Job, int, str]] = {}
        for target_text, ref_text in cfg.inputs.items():
            where = f"{cfg.where}.input[{target_text!r}]"
            target = parse_target(target_text, where)
            producer, index = self.resolve_ref(ref_text, job, current, where)
            ref_targets[target] = (producer, index, ref_text)
        ref_targets.update(updates or {})

        # Sections: inline mappings, recipe files, or paths an earlier job writes.
        for section in SECTIONS:
            value = copy.deepcopy(getattr(cfg, section))
            where = f"{cfg.where}.{section}"
            if (section,) in ref_targets:
                producer, index, text = ref_targets.pop((section,))
                job.section_sources[section] = {"ref": {"job": producer, "index": index, "text": text}}
                job.sections[section] = None
            elif isinstance(value, str):
                candidates = self.writer_candidates(value)
                if candidates:
                    job.section_sources[section] = {"path": {"candidates": candidates, "text": value}}
                    job.sections[section] = None
                else:
                    job.sections[section] = self.load_section_file(value, where)
            elif value is None or isinstance(value, dict):
                job.sections[section] = value
            else:
                raise ConfigError(where, f"must be a mapping or a path to a .yaml/.json file, got {type(value).__name__}")

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

        for section in SECTIONS:
            check_string_keys(job.sections.get(section), f"{cfg.where}.{section}")
        check_recipe(job.sections.get("dj_configs"), f"{cfg.where}.dj_configs",
                     cfg.dj_configs if isinstance(cfg.dj_configs, str) and "dj_configs" not in job.section_sources else None)

        # Component type (extra_configs.type) is checked now.
        if hook.components is not None:
            extra = job.sections.get("extra_configs")
            kind = extra.get("type") if isinstance(extra, dict) else None
            if kind is None:
                raise ConfigError(f"{cfg.where}.extra_configs.type", f"{hook.name} needs a component type; one of: {', '.join(hook.components)}")
            if not isinstance(kind, str):
                raise ConfigError(f"{cfg.where}.extra_configs.type", f"must name one {hook.name} type, got {describe_value(kind)}; "
                                  f"one of: {', '.join(hook.components)}")
            if kind not in hook.components:
                raise ConfigError(f"{cfg.where}.extra_configs.type",
                                  f"unknown {hook.name} type {kind!r}{did_you_mean(str(kind), hook.components)}; known: {', '.join(hook.components)}")
            job.component = kind
        _, component = component_of(hook, job.sections.get("extra_configs"))
        job.n_outputs = component.n_outputs if component is not None else hook.n_outputs
        if cfg.outputs is not None and job.n_outputs is not None and len(cfg.outputs) != job.n_outputs:
            raise ConfigError(f"{cfg.where}.output", f"names {len(cfg.outputs)} output(s) but {hook.name}"
                              f"{' ' + repr(job.component) if job.component else ''} returns {job.n_outputs}")

        # Remaining input refs patch leaves of the sections.
        for target, (producer, index, text) in ref_targets.items():
            job.refs.append({"target": target, "job": producer, "index": index, "text": text})
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
        job.key = self.key_of(job)
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
        return loaded

    def collect_writes(self, job: Job) -> None:
        for dotted in job.hook.writes:
            target = tuple(dotted.split("."))
            if target[0] in job.section_sources:
                continue  # recorded by the job itself at run time
            value = get_path(job.sections, target)
            iterized = target[-1] == "export_path"
            values = value if isinstance(value, list) else [value]
            if not all(item is None or isinstance(item, str) and item.strip() for item in values):
                problem = "must not be empty" if value == "" else f"must be a path or a list of paths, got {describe_value(value)}"
                raise ConfigError(f"{job.where}.{dotted}", problem)
            for position, item in enumerate(values):
                if isinstance(item, str):
                    sub = target + (position,) if isinstance(value, list) else target
                    job.writes.append(Write(sub, item, guess_kind(item), iterized))

    def collect_reads(self, job: Job) -> None:
        """Path edges, external files and required inputs, over the static sections."""
        write_targets = {w.target for w in job.writes} | {tuple(d.split(".")) for d in job.hook.writes}
        ref_targets = {r["target"] for r in job.refs}
        for section in SECTIONS:
            tree = job.sections.get(section)
            if tree is None:
                continue
            for path, value in leaves(tree, (section,)):
                if not isinstance(value, str) or not value or any(path[: len(t)] == t for t in write_targets | ref_targets):
                    continue
                if any(part in OUTPUT_LOCATION_KEYS for part in path if isinstance(part, str)):
                    continue
                candidates = self.writer_candidates(value)
                if candidates:
                    job.path_reads.append({"target": path, "candidates": candidates, "text": value})
        for dotted in job.hook.required_paths:
            target = tuple(dotted.split("."))
            if target[0] in job.section_sources or target in ref_targets:
                continue
            value = get_path(job.sections, target)
            where = f"{job.where}.{dotted}"
            if value is None:
                raise ConfigError(where, f"{job.hook.name} needs {dotted.split('.', 1)[1]}")
            if any(r["target"] == target for r in job.path_reads):
                continue
            if isinstance(value, str) and not os.path.exists(value):
                raise ConfigError(where, f"file not found: {value} (no earlier job writes it either; relative paths are resolved against {os.getcwd()})")

    def link_analysis(self, job: Job, current: list[Job]) -> None:
        analysers = [j for j in current if j.cfg.pipeline == job.cfg.pipeline and j.cfg.meta_name == job.cfg.meta_name
                     and j.hook.name == "ProbeViaAnalyzerHook"]
        if not analysers:
            raise ConfigError(f"{job.where}.meta_name", f"{job.hook.name} refines from the analysis of the earlier "
                              f"ProbeViaAnalyzerHook with the same meta_name, and there is none named {job.cfg.meta_name!r} in pipeline {job.cfg.pipeline!r}")
        job.linked["analysis"] = analysers[-1]

    def dependencies(self, job: Job, current: list[Job]) -> list[Job]:
        deps: dict[int, Job] = {}
        for ref in job.refs:
            deps[id(ref["job"])] = ref["job"]
        for source in job.section_sources.values():
            if "ref" in source:
                deps[id(source["ref"]["job"])] = source["ref"]["job"]
            else:
                for candidate in source["path"]["candidates"]:
                    deps[id(candidate["job"])] = candidate["job"]
        for read in job.path_reads:
            for candidate in read["candidates"]:
                deps[id(candidate["job"])] = candidate["job"]
        for linked in job.linked.values():
            deps[id(linked)] = linked
        _, component = component_of(job.hook, job.sections.get("extra_configs"))
        follows_previous = self.config.sequential or (component is not None and component.follows_previous)
        if follows_previous and current:
            job.after = current[-1]
            deps[id(job.after)] = job.after
        return list(deps.values())

    # ---- keys -------------------------------------------------------------------------------

    def key_view(self, job: Job) -> dict[str, Any]:
        """The job's sections as they enter its key (see the module docstring)."""
        view = copy.deepcopy(job.sections)
        for ref in job.refs:
            if ref["target"][0] not in job.section_sources:
                set_path(view, ref["target"], {"$ref": [ref["job"].key, ref["index"]]}, job.where)
        for read in job.path_reads:
            set_path(view, read["target"], {"$path": [[c["job"].key, c["slot"], c["rel"]] for c in read["candidates"]]}, job.where)
        for write in job.writes:
            set_path(view, write.target, {"$write": [write.kind, write.basename]}, job.where)
        for section in SECTIONS:
            tree = view.get(section)
            if isinstance(tree, dict):
                for runtime_key in RUNTIME_KEYS & tree.keys():
                    del tree[runtime_key]
            if tree is None:
                continue
            for path, value in list(leaves(tree, (section,))):
                if any(part in OUTPUT_LOCATION_KEYS for part in path if isinstance(part, str)):
                    continue  # a published output may appear there after a run; it must not change the key
                if isinstance(value, str) and value and os.path.exists(value):
                    digest = self.hashes.file(value) if os.path.isfile(value) else self.hashes.tree(value)
                    set_path(view, path, {"$file": digest}, job.where)
                elif (module_file := user_module_file(value)) is not None:  # a user function, module:function
                    set_path(view, path, {"$function": [value, self.hashes.file(module_file)]}, job.where)
        for section, source in job.section_sources.items():
            if "ref" in source:
                view[section] = {"$ref": [source["ref"]["job"].key, source["ref"]["index"]]}
            else:
                view[section] = {"$path": [[c["job"].key, c["slot"], c["rel"]] for c in source["path"]["candidates"]]}
        return view

    def external_reads(self, job: Job) -> list[str]:
        """The files and directories outside the job store that the job reads, as its key covers them: the
        recipe files its sections were loaded from, each path its key hashes and each user function's module."""
        reads = [source for section in SECTIONS
                 if isinstance(source := getattr(job.cfg, section), str) and section not in job.section_sources]
        for path, value in leaves(self.key_view(job)):
            if is_placeholder(value) and "$file" in value:
                reads.append(get_path(job.sections, path))
            elif is_placeholder(value) and "$function" in value:
                reads.append(user_module_file(value["$function"][0]))
        return reads

    def key_of(self, job: Job) -> str:
        material = {
            "hook": [job.hook.name, job.hook.version],
            "component": None,
            "libraries": {name: library_version(name) for name in job.hook.libraries},
            "sections": self.key_view(job),
            "deferred_local": job.deferred_local,
            "linked": {role: linked.key for role, linked in job.linked.items()},
        }
        _, component = component_of(job.hook, job.sections.get("extra_configs"))
        if component is not None:
            material["component"] = [job.component, component.version]
        if job.after is not None:
            material["after"] = job.after.key  # ordered after the previous job: its result may depend on it
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:KEY_LENGTH]

    # ---- the whole config -------------------------------------------------------------------

    def iteration_cap(self) -> int:
        return self.config.max_iter_num if self.config.max_iter_num > 0 else self.config.max_iter_cap

    def plan(self) -> Plan:
        if self.config.hpo_config is not None:
            return self.plan_search()
        self.plan_iteration(1)
        self.check_iteration_settings()
        plan = Plan(self.config, self.work_dir, self.jobs, self.hashes, planner=self)
        self.extend(plan, lambda iteration, digest: read_decision(decision_path(self.work_dir, iteration, digest)))
        return plan

    def plan_search(self) -> Plan:
        """hpo_config's grid or random trials, each the config's jobs with its values patched in."""
        hpo = load_hpo(self.config.hpo_config)
        if self.config.iter_targets or self.config.iter_updater or self.config.max_iter_num != 1:
            raise ConfigError("hpo_config", "a search runs each trial once: it cannot be combined with "
                              "max_iter_num, iter_targets or iter_updater")
        search = Search(hpo)
        for number, assignment in enumerate(trials(hpo), 1):
            patches: dict[tuple[str, str], dict[str, Any]] = {}
            for parameter in hpo.parameters:
                patches.setdefault((parameter.pipeline, parameter.meta_name), {})[parameter.local] = assignment[parameter.name]
            current: list[Job] = []
            for cfg in self.config.jobs():
                job = self.plan_job(cfg, 1, current, patches=patches.get((cfg.pipeline, cfg.display_name)))
                job.trial = number
                current.append(job)
                self.add_planned(job)
            if number == 1:
                self.check_search(hpo, current)
            producer, index = self.resolve_ref(hpo.metric, current[-1], current, "hpo_config.metric.name")
            search.trials.append(Trial(number, assignment, producer, index))
        return Plan(self.config, self.work_dir, self.jobs, self.hashes, planner=self, search=search)

    def check_search(self, hpo: HpoConfig, jobs: list[Job]) -> None:
        names = {(job.cfg.pipeline, job.cfg.display_name) for job in jobs}
        for parameter in hpo.parameters:
            if (parameter.pipeline, parameter.meta_name) not in names:
                known = [f"{p}.{m}" for p, m in sorted(names)]
                raise ConfigError(f"hpo_config.parameters.{parameter.name}",
                                  f"no job {parameter.pipeline}.{parameter.meta_name}{suggest(f'{parameter.pipeline}.{parameter.meta_name}', known)}")

    def plan_iteration(self, iteration: int) -> None:
        updates = self.iteration_updates(self.iterations[-1]) if self.iterations else {}
        current: list[Job] = []
        for cfg in self.config.jobs():
            job = self.plan_job(cfg, iteration, current, updates.get((cfg.pipeline, cfg.display_name), {}))
            current.append(job)
            self.add_planned(job)
        self.iterations.append(current)

    def iteration_updates(self, previous: list[Job]) -> dict[tuple[str, str], dict[Path_, tuple[Job, int, str]]]:
        """iter_updater as input refs of the next iteration's jobs to the previous iteration's outputs."""
        updates: dict[tuple[str, str], dict[Path_, tuple[Job, int, str]]] = {}
        for source, target in self.config.iter_updater.items():
            where = f"iter_updater[{source!r}]"
            producer, index = self.resolve_ref(source, previous[-1], previous, where)
            pipeline, meta_name, local = target.split(".", 2)
            updates.setdefault((pipeline, meta_name), {})[parse_target(local, where)] = (producer, index, source)
        return updates

    def extend(self, plan: Plan, decision_of: Callable[[int, str], bool | None]) -> None:
        """Plan the iterations known now.

        Without iter_targets every iteration is known. With them, iteration N+1 is planned when
        ``decision_of(N, digest)`` says iteration N missed its targets (None: not decided yet).
        """
        cap = self.iteration_cap()
        plan.pending_note = ""
        while len(self.iterations) < cap:
            last = len(self.iterations)
            if self.config.iter_targets:
                decided = decision_of(last, self.decision_digest(last))
                if decided is None:
                    plan.pending_note = (f"iterations {last + 1}-{cap} run only while the targets are unmet; "
                                         f"they are planned once iteration {last}'s results are checked")
                    break
                if not decided:
                    break
            self.plan_iteration(last + 1)

    def decision_digest(self, iteration: int) -> str:
        """Names iteration N's decision: its jobs, the targets it is checked against and the cap."""
        material = {"jobs": [job.key for job in self.iterations[iteration - 1]], "cap": self.iteration_cap(),
                    "targets": self.config.iter_targets, "mode": self.config.iter_targets_mode}
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:KEY_LENGTH]

    def decision_spec(self, iteration: int) -> dict[str, Any]:
        jobs = self.iterations[iteration - 1]
        targets = []
        for position, text in enumerate(self.config.iter_targets):
            match = TARGET_RE.match(text)
            producer, index = self.resolve_ref(match.group(1), jobs[-1], jobs, f"iter_targets[{position}]")
            targets.append({"text": text, "context": producer.context_path, "index": index,
                            "op": match.group(2), "value": float(match.group(3))})
        return {"iteration": iteration, "cap": self.iteration_cap(), "mode": self.config.iter_targets_mode,
                "targets": targets}

    def check_iteration_settings(self) -> None:
        first_iteration = self.iterations[0]
        for position, text in enumerate(self.config.iter_targets):
            where = f"iter_targets[{position}]"
            match = TARGET_RE.match(text) if isinstance(text, str) else None
            if not match:
                raise ConfigError(where, f"{text!r} is not '<pipeline>.<meta_name>.<key> <op> <number>' with op one of == >= <= > <")
            try:
                float(match.group(3))
            except ValueError:
                raise ConfigError(where, f"{match.group(3)!r} is not a number") from None
            self.resolve_ref(match.group(1), first_iteration[-1], first_iteration, where)
        for source, target in self.config.iter_updater.items():
            where = f"iter_updater[{source!r}]"
            self.resolve_ref(source, first_iteration[-1], first_iteration, where)
            parts = target.split(".") if isinstance(target, str) else []
            if len(parts) < 4 or parts[2] not in SECTIONS or not all(parts):
                raise ConfigError(where, f"{target!r} must be <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>")
            if not any(j.cfg.pipeline == parts[0] and j.cfg.display_name == parts[1] for j in first_iteration):
                raise ConfigError(where, f"{target!r}: no job {parts[0]}.{parts[1]}")


def plan_config(config: SandboxConfig, hash_cache: FileHashCache | None = None) -> Plan:
    return Planner(config, hash_cache).plan()

