"""Whether an iterative experiment runs another iteration: DJ-Sandbox's iter_targets, as a file.

Upstream loops in one process: after iteration N it checks ``iter_targets`` (all or any, per
``iter_targets_mode``) and stops when they are met or at ``max_iter_num``. Here a checkpoint job
writes that check to ``<work_dir>/.sandflow/iterations/iter_<N>-<digest>.json`` (the digest names
iteration N's job keys and the targets), and the plan grows by iteration N+1 only when the file says
so. Because the decision is a file, a restarted run or a cluster job that re-reads the Snakefile
plans exactly the same iterations.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable
from typing import Any

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}

log = logging.getLogger("sandflow.plan.iterations")


def read_decision(path: str) -> bool | None:
    """Whether the next iteration runs, from a decision file; None when there is none yet."""
    try:
        with open(path) as handle:
            return bool(json.load(handle)["next_iteration"])
    except FileNotFoundError:
        return None


def check_target(target: dict[str, Any]) -> dict[str, Any]:
    """One target against its job's output; a value that is not a number misses it (as upstream)."""
    with open(target["context"]) as handle:
        value = json.load(handle)["values"][target["index"]]
    try:
        met = COMPARE[target["op"]](float(value), target["value"])
    except (TypeError, ValueError):
        log.error("%s: the value %r is not a number, so the target is not met", target["text"], value)
        met = False
    return {"target": target["text"], "value": value, "met": met}


def decide(spec: dict[str, Any]) -> dict[str, Any]:
    checks = [check_target(target) for target in spec["targets"]]
    met = (all if spec["mode"] == "all" else any)(check["met"] for check in checks)
    at_cap = spec["iteration"] >= spec["cap"]
    if met:
        reason = f"the targets are met ({spec['mode']}) at iteration {spec['iteration']}"
    elif at_cap:
        reason = f"the targets are not met, and iteration {spec['iteration']} is the last allowed (cap {spec['cap']})"
    else:
        reason = f"the targets are not met at iteration {spec['iteration']}: iteration {spec['iteration'] + 1} runs"
    return {
        "iteration": spec["iteration"],
        "targets": checks,
        "targets_met": met,
        "next_iteration": not met and not at_cap,
        "reason": reason,
    }
