"""Credentials stay out of configs and are sent only where it is safe (README, "On a shared login node").

A value in a job's sections lands in its context.json, its key material and wandb; so a header that carries a
credential (Authorization, X-Api-Key, Cookie, ...) is refused there: its value comes from an environment
variable instead (``api_key_env`` for the bearer token, ``header_env`` for other headers). The variable
names are checked too, so a config cannot send, say, $HOME or $LD_PRELOAD as a key. A key is sent over
plain http:// only to this machine (127.0.0.0/8, ::1, localhost), unless the job's extra_configs say
``allow_insecure_http: true`` (not part of the job key: it changes where a request may go, not its result).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from sandflow.config.errors import ConfigError, child_path

CREDENTIAL_HEADER = re.compile(r"auth|token|key|secret|cookie|passw|session|credential", re.IGNORECASE)
HEADER_MAPPINGS = frozenset({"headers", "default_headers", "extra_headers", "http_headers"})
URL_KEYS = frozenset({"base_url", "api_base", "api_url", "api_endpoint"})
ENV_NAME_KEYS = frozenset({"api_key_env"})
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Variables that say how the system or a program behaves, never a key of ours: refused as key variables.
SYSTEM_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "TERM", "LANG", "MAIL", "HOSTNAME"}
    | {"DISPLAY", "IFS", "EDITOR", "PS1", "ENV", "BASH_ENV", "CDPATH", "MANPATH", "PAGER", "VISUAL", "TZ"}
)
SYSTEM_ENV_PREFIXES = (
    "LD_",
    "DYLD_",
    "PYTHON",
    "LC_",
    "XDG_",
    "SSH_",
    "SNAKEMAKE",
    "CONDA",
    "VIRTUAL_ENV",
)
ALLOW_INSECURE_HTTP = "allow_insecure_http"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def key_variable_problem(name: str) -> str | None:
    """Why an environment variable may not hold a key (None: it may)."""
    if not ENV_NAME.fullmatch(name):
        return f"{name!r} is not an environment variable name sandflow reads keys from (A-Z, 0-9, _; e.g. MY_API_KEY)"
    if name in SYSTEM_ENV or name.startswith(SYSTEM_ENV_PREFIXES):
        return f"{name} is a system or program setting, not a key; name a variable of your own, e.g. MY_API_KEY"
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_url_problem(url: str, allowed: bool) -> str | None:
    """Why a request may not go to url (None: it may): plain http:// leaves this machine only when allowed."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() != "http" or allowed or is_loopback(parts.hostname):
        return None
    return (
        f"{url!r} is plain http:// to another host, which would send the API key unencrypted; use https://, "
        f"or set extra_configs.{ALLOW_INSECURE_HTTP}: true if this network is trusted"
    )


def _walk(tree: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(place, key, value) for every mapping entry under tree."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            place = child_path(where, key)
            yield place, str(key), value
            yield from _walk(value, place)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _walk(value, child_path(where, index))


def check_credentials(sections: Mapping[str, Any], where: str) -> None:
    """A job's sections (after files and local patches): no credential in a header, key variables of our own,
    no key over plain http:// to another host. ConfigError naming the place."""
    extra = sections.get("extra_configs")
    allowed = isinstance(extra, Mapping) and extra.get(ALLOW_INSECURE_HTTP) is True
    for section in ("dj_configs", "extra_configs"):
        for place, key, value in _walk(sections.get(section), child_path(where, section) if where else section):
            if key in HEADER_MAPPINGS and isinstance(value, Mapping):
                for header in value:
                    if CREDENTIAL_HEADER.search(str(header)):
                        raise ConfigError(
                            child_path(place, str(header)),
                            "a credential does not belong in a config (it would be written to context.json, the "
                            "job key and wandb); put it in an environment variable and name that variable: "
                            "api_key_env for the bearer token, header_env: {<header>: <VARIABLE>} for other headers",
                        )
            elif key in ENV_NAME_KEYS and isinstance(value, str) and value:
                problem = key_variable_problem(value)
                if problem:
                    raise ConfigError(place, problem)
            elif key == "header_env" and isinstance(value, Mapping):
                for header, name in value.items():
                    problem = key_variable_problem(str(name))
                    if problem:
                        raise ConfigError(child_path(place, str(header)), problem)
            elif key in URL_KEYS and isinstance(value, str):
                problem = insecure_url_problem(value, allowed)
                if problem:
                    raise ConfigError(place, problem)
