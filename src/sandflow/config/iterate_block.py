"""``iterate:``, a readable form of DJ-Sandbox's iteration keys, converted to them when a config is loaded.

    iterate:
      until: "p.evaluate.min_mse <= 0.1"      # or a list -> iter_targets
      mode: all                               # or any     -> iter_targets_mode
      max_iterations: 5                       #            -> max_iter_num
      update:                                 #            -> iter_updater {source: target}
        - {source: p.merge.merged, target: p.generate.extra_configs.dataset_path}

Without ``max_iterations`` the run goes on until the targets are met (max_iter_num 0), at most
``max_iter_cap`` iterations (20). Using ``iterate`` with any of the upstream keys is an error. Errors
found later in the converted keys are reported at the place written (``iterate.until[0]``), through
``SandboxConfig.written_as``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sandflow.config.errors import ConfigError, config_path

UPSTREAM_KEYS = ("max_iter_num", "iter_targets", "iter_targets_mode", "iter_updater")


def expand_iterate(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(data with ``iterate`` replaced by the upstream keys; converted place -> place as written).

    The block's shape has been checked by the JSON Schema already."""
    block = data.get("iterate")
    if block is None:
        return data, {}
    both = [key for key in UPSTREAM_KEYS if key in data]
    if both:
        raise ConfigError(
            "iterate",
            f"both iteration forms at once: use either `iterate` or {', '.join(UPSTREAM_KEYS)}, "
            f"not both (this config also has {', '.join(both)})",
        )
    until = block.get("until")
    targets = [] if until is None else [until] if isinstance(until, str) else list(until)
    if not targets and "max_iterations" not in block:
        raise ConfigError(
            "iterate", "needs `until` (targets to stop at) or `max_iterations` (how many iterations), or both"
        )
    written_as = {
        config_path("iter_targets", position): (
            "iterate.until" if isinstance(until, str) else config_path("iterate", "until", position)
        )
        for position in range(len(targets))
    }
    updater: dict[str, str] = {}
    for position, update in enumerate(block.get("update") or []):
        source = update["source"]
        if source in updater:
            first = list(updater).index(source)
            raise ConfigError(
                config_path("iterate", "update", position, "source"),
                f"{source!r} is already the source of update[{first}]; each output updates one target "
                "(as in upstream's iter_updater)",
            )
        updater[source] = update["target"]
        written_as[config_path("iter_updater", source)] = config_path("iterate", "update", position)
    converted = {key: value for key, value in data.items() if key != "iterate"}
    converted.update(
        max_iter_num=block.get("max_iterations", 0),
        iter_targets=targets,
        iter_targets_mode=block.get("mode", "all"),
        iter_updater=updater,
    )
    return converted, written_as


@contextlib.contextmanager
def as_written(written_as: dict[str, str]) -> Iterator[None]:
    """Report an error in a converted key at the place the user wrote it."""
    try:
        yield
    except ConfigError as exc:
        if exc.where in written_as:
            raise ConfigError(written_as[exc.where], exc.message) from None
        raise
