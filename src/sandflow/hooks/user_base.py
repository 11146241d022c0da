"""``sandflow.BaseHook``: what a user's own hook subclasses, with DJ-Sandbox's attribute names.

A DJ-Sandbox custom hook runs here with its import line changed (``from sandflow import BaseHook``). Its
``hook()`` returns the outputs: one value, a tuple, or a list with one value per name in the job's ``output``.
This module imports only the standard library: ``from sandflow import BaseHook`` must stay light.
"""

from __future__ import annotations

import logging
from typing import Any


class ConfigView(dict[str, Any]):
    """A config section readable both as a dict and by attribute (``extra_cfg.export_path``), as
    DJ-Sandbox's namespaces are; nested mappings are views too."""

    def __init__(self, values: dict[str, Any]):
        super().__init__({key: _view(value) for key, value in values.items()})

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return ConfigView(value)
    if isinstance(value, list):
        return [_view(item) for item in value]
    return value


class JobWatcher:
    """DJ-Sandbox's watcher, reduced to what a job can do alone: ``watch`` writes the value to the job's log
    (sandflow records a job's outputs in its context.json, not in a shared watcher)."""

    def __init__(self, log: logging.Logger):
        self.log = log

    def watch(self, result: Any, key: str) -> None:
        self.log.info("watch %s: %r", key, result)


class BaseHook:
    """A user hook: subclass it and override ``hook()``.

    Attributes as in DJ-Sandbox: ``job_cfg`` (the job's config mapping), ``meta_name``, ``dj_cfg`` and
    ``extra_cfg`` (with input refs and ``local`` applied, write paths pointing into the job directory),
    ``output_keys`` (the job's ``output`` names, or None), ``curr_iter`` (the job's iteration, as in iter_<N>),
    ``watcher``; sandflow adds ``job_dir`` (where files of the job's own go) and ``log``.
    """

    def __init__(self, job_cfg: dict[str, Any], watcher: Any, *args: Any, **kwargs: Any):
        self.job_cfg = job_cfg
        self.watcher = watcher
        self.hook_type = job_cfg.get("hook")
        self.meta_name = job_cfg.get("meta_name")
        self.input_mapping = job_cfg.get("input") or {}
        self.local_settings = job_cfg.get("local") or {}
        outputs = job_cfg.get("output")
        self.output_keys = outputs if outputs is None or isinstance(outputs, list) else [outputs]
        self.dj_cfg = _view(job_cfg.get("dj_configs"))
        self.extra_cfg = _view(job_cfg.get("extra_configs"))
        self.curr_iter: int = kwargs.get("curr_iter", 1)
        self.job_dir: str | None = kwargs.get("job_dir")
        self.log: logging.Logger = kwargs.get("log") or logging.getLogger("sandflow.job")

    def hook(self, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define hook()")
