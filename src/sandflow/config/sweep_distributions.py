"""The parameter distributions of a wandb sweep: the keys each takes, and the value it gives at a quantile.

Each is defined as wandb's sweeps engine defines it (wandb/sweeps, ``src/sweeps/params.py``): a value is the
distribution's inverse CDF at a uniform draw ``u`` in [0, 1), and a ``q_`` form rounds it to a multiple of
``q`` (``round(x / q) * q``, an int when ``q`` is one, so it may fall just outside [min, max] as in wandb)::

    uniform                 min + (max - min) * u
    log_uniform_values      exp(U(ln min, ln max))          min, max: the values (min > 0)
    log_uniform             exp(U(min, max))                min, max: base-e exponents (wandb's older form)
    inv_log_uniform_values  exp(-U(-ln max, -ln min))       in [min, max]; ln(1/X) is uniform
    inv_log_uniform         exp(-U(min, max))               in [exp(-max), exp(-min)]
    normal                  N(mu, sigma)                    mu 0, sigma 1 when left out
    log_normal              exp(N(mu, sigma))
    q_uniform, q_log_uniform_values, q_log_uniform, q_normal, q_log_normal: the above, rounded to q (default 1)

``int_uniform`` (whole numbers in [min, max]), ``categorical`` (``values``, optional ``probabilities``) and
``constant`` (``value``) are drawn by hpo_spec itself. A parameter without ``distribution`` is categorical with
``values``, constant with ``value``, int_uniform when min and max are both whole numbers, else uniform (as wandb).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from sandflow.config.errors import ConfigError, describe_value, did_you_mean

BOUNDED = ("uniform", "log_uniform_values", "log_uniform", "inv_log_uniform_values", "inv_log_uniform")
NORMAL = ("normal", "log_normal")
QUANTISED = {f"q_{kind}": kind for kind in ("uniform", "log_uniform_values", "log_uniform", "normal", "log_normal")}
CONTINUOUS = (*BOUNDED, *NORMAL, *QUANTISED)
# distribution -> the keys it takes besides `distribution` (wandb's schemas refuse any other key).
KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values", "probabilities"),
    "int_uniform": ("min", "max"),
    **{kind: ("min", "max") for kind in BOUNDED},
    **{kind: ("mu", "sigma") for kind in NORMAL},
}
KEYS.update({q_kind: (*KEYS[base], "q") for q_kind, base in QUANTISED.items()})
DISTRIBUTIONS = tuple(KEYS)
REQUIRED = {"constant": ("value",), "categorical": ("values",)}
LARGEST_EXPONENT = math.log(2.0**1023)  # exp() of more is not a float
# The normal's quantile is taken in [TAIL, 1 - TAIL]: random() can return 0, which has none (8.2 sigma out).
TAIL = 2.0**-53


def distribution_of(spec: dict[str, Any]) -> Any:
    """The distribution a parameter's spec names or implies (wandb's inference when it names none)."""
    if "distribution" in spec:
        return spec["distribution"]
    if "values" in spec:
        return "categorical"
    if "value" in spec:
        return "constant"
    whole = all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) for k in ("min", "max"))
    return "int_uniform" if whole else "uniform"


def check_distribution(kind: Any, spec: dict[str, Any], where: str) -> None:
    """A ConfigError naming the key when the spec is not one wandb's schema for its distribution accepts."""
    if kind not in KEYS:
        raise ConfigError(f"{where}.distribution", f"unknown distribution {kind!r}{did_you_mean(str(kind), KEYS)}")
    allowed = KEYS[kind]
    for key in spec:
        if key != "distribution" and key not in allowed:
            raise ConfigError(
                f"{where}.{key}", f"a {kind} distribution takes {', '.join(allowed)}{did_you_mean(str(key), allowed)}"
            )
    for key in REQUIRED.get(kind, ("min", "max") if "min" in allowed else ()):
        if key not in spec:
            raise ConfigError(f"{where}.{key}", f"a {kind} distribution needs {key}")
    for key in ("min", "max", "mu", "sigma", "q"):
        if key in spec and not is_number(spec[key]):
            raise ConfigError(
                f"{where}.{key}", f"a {kind} distribution needs a number, got {describe_value(spec[key])}"
            )
    if "q" in spec and spec["q"] <= 0:
        raise ConfigError(f"{where}.q", f"the step q must be a number above 0, got {describe_value(spec['q'])}")
    if spec.get("sigma", 1) < 0:
        raise ConfigError(f"{where}.sigma", f"must be at least 0, got {spec['sigma']}")
    if "min" in allowed:
        _check_bounds(kind, spec, where)


def _check_bounds(kind: str, spec: dict[str, Any], where: str) -> None:
    low, high = spec["min"], spec["max"]
    if low > high:
        raise ConfigError(where, f"min {low} is above max {high}")
    base = QUANTISED.get(kind, kind)
    if base.endswith("_values") and low <= 0:
        raise ConfigError(f"{where}.min", f"a {kind} distribution needs min > 0, got {low}")
    if base in ("log_uniform", "inv_log_uniform") and max(abs(low), abs(high)) > LARGEST_EXPONENT:
        bound = "min" if abs(low) > abs(high) else "max"
        raise ConfigError(
            f"{where}.{bound}",
            f"{kind}'s min and max are base-e exponents and e^{spec[bound]} is not a float; "
            "for the values themselves write log_uniform_values",
        )


def value_at(kind: str, spec: dict[str, Any], u: float, where: str) -> float | int:
    """The value of a continuous distribution at quantile u in [0, 1] (wandb's ppf)."""
    base = QUANTISED.get(kind, kind)
    try:
        value = _base_value(base, spec, u)
    except OverflowError:
        raise ConfigError(where, f"a {kind} draw at quantile {u:.3g} is too large for a float") from None
    return _quantise(value, spec.get("q", 1)) if kind in QUANTISED else value


def _base_value(kind: str, spec: dict[str, Any], u: float) -> float:
    if kind in NORMAL:
        mu, sigma = spec.get("mu", 0), spec.get("sigma", 1)
        x = NormalDist(mu, sigma).inv_cdf(min(max(u, TAIL), 1 - TAIL)) if sigma > 0 else float(mu)
        return math.exp(x) if kind == "log_normal" else x
    low, high = spec["min"], spec["max"]
    if kind == "uniform":
        return low + (high - low) * u
    if kind == "log_uniform_values":
        low, high = math.log(low), math.log(high)
        return math.exp(low + (high - low) * u)
    if kind == "log_uniform":
        return math.exp(low + (high - low) * u)
    if kind == "inv_log_uniform_values":
        low, high = -math.log(high), -math.log(low)
    return math.exp(-(low + (high - low) * (1 - u)))  # inv_log_uniform[_values]


def _quantise(value: float, q: float) -> float | int:
    rounded = round(value / q) * q
    return int(rounded) if isinstance(q, int) else rounded


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
