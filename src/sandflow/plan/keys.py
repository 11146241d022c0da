"""A job's key: sha256 over canonical JSON of everything that produces its result.

The material: the hook (and component) with the sha256 of their code (hooks/source_digest.py), the
versions of the libraries that shape it; its dj_configs / extra_configs after file loading and ``local`` patches, where each
``input`` target is replaced by {upstream key, output index}, each path an earlier job writes by
{writer key, slot, relative path}, each external file by its sha256 (only under keys that name paths, see
core/paths.py: an op's `repl: '.'` is text), each user function by its module's sha256, and each path the job writes by its file name only. Publishing and run-time
settings (export directories, np, work_dir, project/experiment names) stay out, so the same work
under another export_path, or in another iteration, is a cache hit.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from sandflow.config.errors import ConfigError, child_path
from sandflow.config.model import SECTIONS
from sandflow.config.tree import KeyPath, get_path, is_placeholder, leaves, set_path
from sandflow.core.filehash import FileHashCache
from sandflow.core.keys import digest_of, library_version
from sandflow.core.paths import encloses, names_a_path
from sandflow.hooks.llm.messages import user_module_file
from sandflow.hooks.registry import component_of
from sandflow.hooks.source_digest import source_digest
from sandflow.plan.model import Job, Ref, SectionSource

# Top-level section keys that only say where or how fast, never what: kept out of keys.
RUNTIME_KEYS = frozenset(
    {"np", "work_dir", "project_name", "experiment_name", "auto_op_parallelism", "allow_insecure_http"}
)
# Keys that name where something is written, in any hook's sections, or (data_root_path) a root that paths
# are made relative to without being read: never read edges or hashed files, kept literally in keys.
# Data-Juicer's op arguments that say where an op writes (save_dir, frame_dir...) are output locations too.
OUTPUT_LOCATION_KEYS = frozenset(
    {"export_path", "work_dir", "path_k_sigma_recipe", "path_model_feedback_recipe", "data_root_path"}
    | {"save_dir", "save_visualization_dir", "visualization_dir", "save_mesh_dir", "frame_dir", "output_dir"}
    | {"output_video_dir", "point_cloud_dir_for_metric", "temp_save_path", "cropping_face_video_temp_path"}
)


def placeholder(source: SectionSource) -> dict[str, Any]:
    """What a run-time value stands as in a key: the upstream keys it comes from."""
    if isinstance(source, Ref):
        return {"$ref": [source.job.key, source.index]}
    return {"$path": [[c.job.key, c.slot, c.rel] for c in source.candidates]}


def key_view(job: Job, hashes: FileHashCache) -> dict[str, Any]:
    """The job's sections as they enter its key (see the module docstring)."""
    view = copy.deepcopy(job.sections)
    for ref in job.refs:
        if ref.target[0] not in job.section_sources:
            set_path(view, ref.target, placeholder(ref), job.where)
    for read in job.path_reads:
        set_path(view, read.target, placeholder(read), job.where)
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
            if isinstance(value, str) and value and names_a_path(key_name(path)) and os.path.exists(value):
                set_path(view, path, {"$file": read_path_digest(job, path, value, hashes)}, job.where)
            elif (module_file := user_module_file(value)) is not None:  # a user function, module:function
                digest = read_path_digest(job, path, module_file, hashes)
                set_path(view, path, {"$function": [value, digest]}, job.where)
    for section, source in job.section_sources.items():
        view[section] = placeholder(source)
    return view


def key_name(path: KeyPath) -> str:
    """The name of the key a leaf sits under (a list item's is its list's)."""
    return next((part for part in reversed(path) if isinstance(part, str)), "")


def read_path_digest(job: Job, path: KeyPath, value: str, hashes: FileHashCache) -> str:
    """sha256 of a file or directory a job reads; one that holds the working directory or work_dir (`.`, `..`,
    `/`) would hash the job store itself, so the key would change with every job that finishes."""
    where = job.where
    for part in path:
        where = child_path(where, part)
    for place, name in ((os.getcwd(), "the working directory"), (job.work_dir, f"work_dir {job.work_dir}")):
        if encloses(value, place):
            raise ConfigError(where, f"{value!r} holds {name}: name the files or the directory the job reads")
    try:
        return hashes.tree(value) if os.path.isdir(value) else hashes.file(value)
    except OSError as exc:
        problem = str(exc) if exc.strerror is None else f"cannot read {exc.filename or value}: {exc.strerror}"
        raise ConfigError(where, problem) from None


# The version of how keys are derived, part of every key: a change to what goes into the material (or how it is
# hashed) bumps it, so every job reruns once on purpose rather than old records passing for new ones.
KEY_SCHEME = 2


def key_of(job: Job, hashes: FileHashCache) -> str:
    return digest_of(key_material(job, hashes))


def hook_digest(job: Job, hashes: FileHashCache) -> str | None:
    """The digest of the hook's code: a user hook's module file is hashed as a user function's is."""
    if job.hook.source_file is not None:
        return read_path_digest(job, ("hook",), job.hook.source_file, hashes)
    return source_digest(job.hook.run)


def key_material(job: Job, hashes: FileHashCache) -> dict[str, Any]:
    """Everything the key is the digest of (plan/history.py records it to say why a job reruns)."""
    material = {
        "scheme": KEY_SCHEME,
        "hook": [job.hook.name, hook_digest(job, hashes)],
        "component": None,
        "libraries": {name: library_version(name) for name in job.hook.libraries},
        "sections": key_view(job, hashes),
        "deferred_local": job.deferred_local,
        "linked": {role: linked.key for role, linked in job.linked.items()},
    }
    _, component = component_of(job.hook, job.sections.get("extra_configs"))
    if component is not None:
        material["component"] = [job.component, source_digest(component.run)]
    if job.after is not None:
        material["after"] = job.after.key  # ordered after the previous job: its result may depend on it
    return material


def external_reads(job: Job, hashes: FileHashCache) -> list[str]:
    """The files and directories outside the job store that the job reads, as its key covers them: the
    recipe files its sections were loaded from, each path its key hashes and each user function's module."""
    reads = [
        source
        for section in SECTIONS
        if isinstance(source := getattr(job.cfg, section), str) and section not in job.section_sources
    ]
    if job.hook.source_file is not None:
        reads.append(job.hook.source_file)
    for path, value in leaves(key_view(job, hashes)):
        if is_placeholder(value) and "$file" in value:
            reads.append(get_path(job.sections, path))
        elif is_placeholder(value) and "$function" in value:
            reads.append(user_module_file(value["$function"][0]))
    return reads
