"""A user's own hook, ``hook: 'my_hooks:CountRows'``: a ``sandflow.BaseHook`` subclass in a module of the run directory.

At plan time the module's file is found under the current directory and read, not imported (as for a user
function, hooks/llm/messages.py): its sha256 enters the job key, so editing it reruns its jobs, and a missing
file or class is a config error. The job process imports it and calls ``hook()`` (a job of its own, run by
the ``user_hook`` rule, rules/user_hooks.smk). Such a job is named ``<module>.<Class>`` in work_dir
(jobs/my_hooks.CountRows/<key>/), writes into its job directory what ``extra_configs.export_path`` names, and
takes the ``data-juicer`` family's resources unless its ``resources:`` say otherwise.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from sandflow.config.errors import ConfigError
from sandflow.core.jobio import IN_THE_LOG, JobFailed, error_line
from sandflow.hooks.base import Hook, JobRun
from sandflow.hooks.llm.messages import resolve_function, user_module_file
from sandflow.hooks.user_base import BaseHook, JobWatcher

USER_HOOK_RULE = "user_hook"
# A job's hook name in work_dir and in its record: <module>.<Class> (no ':', so it is a plain directory name).
USER_HOOK_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"


def is_user_hook(spec: str) -> bool:
    """Whether a config's ``hook`` names a user hook (``module:Class``) rather than a DJ-Sandbox hook."""
    return ":" in spec


def is_user_hook_name(name: str) -> bool:
    """Whether a job's hook name (``<module>.<Class>``) is a user hook's."""
    return re.fullmatch(USER_HOOK_NAME, name) is not None


def user_hook(name: str) -> Hook | None:
    """The hook record of a user hook named ``<module>.<Class>`` (None for any other name)."""
    if not is_user_hook_name(name):
        return None
    module, _, class_name = name.rpartition(".")
    spec = f"{module}:{class_name}"

    def run(job: JobRun) -> Any:
        return run_user_hook(spec, job)

    run.__module__, run.__qualname__ = module, class_name
    return Hook(
        name,
        run,
        writes=("extra_configs.export_path",),
        n_outputs=None,
        source_file=user_module_file(spec),
        rule=USER_HOOK_RULE,
        stage="user_hooks",
    )


def planned_user_hook(spec: str, where: str) -> Hook:
    """The hook a config's ``module:Class`` names, checked without running the module: its file is under the
    current directory and defines (or imports) the class."""
    module, _, class_name = spec.partition(":")
    source_file = user_module_file(spec)
    if source_file is None:
        path = module.replace(".", "/")
        raise ConfigError(where, f"no module {module!r} in the run directory ({path}.py or {path}/__init__.py)")
    try:
        tree = ast.parse(open(source_file, "rb").read(), source_file)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(where, f"cannot read {source_file}: {exc}") from None
    if class_name not in _top_level_names(tree):
        raise ConfigError(where, f"{source_file} defines no {class_name!r} (a sandflow.BaseHook subclass)")
    hook = user_hook(f"{module}.{class_name}")
    assert hook is not None  # the schema's pattern for `hook` guarantees the name's form
    return hook


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module's top level binds by class, import or assignment."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def run_user_hook(spec: str, job: JobRun) -> Any:
    """Import the hook's class from the current directory, build it as DJ-Sandbox does and call ``hook()``; a
    failure of the user's code is one line (its traceback goes to the job's log)."""
    try:
        hook_class = resolve_function(spec, "hook")
    except ValueError as exc:
        raise JobFailed(str(exc)) from None
    except Exception as exc:
        job.log.exception("importing %s failed", spec)
        raise JobFailed(f"importing {spec} raised {error_line(exc)} {IN_THE_LOG}") from None
    if not (isinstance(hook_class, type) and issubclass(hook_class, BaseHook)):
        raise JobFailed(f"hook {spec!r} is not a subclass of sandflow.BaseHook")
    job_cfg = {
        "hook": spec,
        "meta_name": job.meta_name,
        "dj_configs": job.dj_configs,
        "extra_configs": job.extra_configs,
        "output": job.output_names,
    }
    try:
        hook = hook_class(job_cfg, JobWatcher(job.log), curr_iter=job.iteration, job_dir=str(job.job_dir), log=job.log)
        result = hook.hook()
    except Exception as exc:
        job.log.exception("%s failed", spec)
        raise JobFailed(f"{spec} raised {error_line(exc)} {IN_THE_LOG}") from None
    names = job.output_names or []
    if len(names) > 1 and isinstance(result, list) and len(result) == len(names):
        return tuple(result)  # a list with one value per output name: several outputs
    return result
