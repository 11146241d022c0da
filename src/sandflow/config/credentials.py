"""Credentials stay out of configs and are sent only where it is safe (README, "On a shared login node").

A value in a job's sections lands in its context.json, its key material and wandb; so a header that carries a
credential (Authorization, X-Api-Key, Cookie, ...) is refused there: its value comes from an environment
variable instead (``api_key_env`` for the bearer token, ``header_env`` for other headers). The variable
names are checked too, so a config cannot send, say, $HOME or $LD_PRELOAD, or another service's credential
($AWS_SECRET_ACCESS_KEY, $GITHUB_TOKEN, ...) as a key. A URL may not carry credentials (``https://user:pass@host``,
``?key=...``): it would be recorded like any other value. A key is sent over plain http:// only to this machine
(127.0.0.0/8, ::1, localhost; hooks/llm/chat.py also checks who listens there), unless the job's extra_configs say
``allow_insecure_http: true`` (not part of the job key: it changes where a request may go, not its result).
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from sandflow.config.errors import ConfigError, child_path
from sandflow.core.listeners import listener_uids

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
# Credentials of other services: a config naming one would send it to whatever endpoint the config names.
OTHER_SERVICE_ENV = frozenset(
    {"GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}
    | {"WANDB_API_KEY", "NPM_TOKEN", "PYPI_TOKEN", "TWINE_PASSWORD", "DOCKER_PASSWORD", "VAULT_TOKEN"}
)
OTHER_SERVICE_PREFIXES = ("AWS_", "GOOGLE_", "GCLOUD_", "GCP_", "CLOUDSDK_", "AZURE_", "ARM_", "GITHUB_", "WANDB_")
# Query parameters that carry credentials: as headers, plus signatures (AWS, Azure SAS) and passwords.
CREDENTIAL_PARAMETER = re.compile(CREDENTIAL_HEADER.pattern + r"|signature|^sig$|^pwd$|^pass$", re.IGNORECASE)
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
ALLOW_INSECURE_HTTP = "allow_insecure_http"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def key_variable_problem(name: str) -> str | None:
    """Why an environment variable may not hold a key (None: it may)."""
    if not ENV_NAME.fullmatch(name):
        return f"{name!r} is not an environment variable name sandflow reads keys from (A-Z, 0-9, _; e.g. MY_API_KEY)"
    if name in SYSTEM_ENV or name.startswith(SYSTEM_ENV_PREFIXES):
        return f"{name} is a system or program setting, not a key; name a variable of your own, e.g. MY_API_KEY"
    if name in OTHER_SERVICE_ENV or name.startswith(OTHER_SERVICE_PREFIXES):
        return (
            f"{name} is another service's credential, and the request would hand it to this endpoint; "
            f"put the endpoint's own key in a variable of your own, e.g. MY_API_KEY"
        )
    return None


def _credential_parameters(text: str) -> list[str]:
    """The names of credential-like parameters in a query string (or a fragment written like one)."""
    names = (urllib.parse.unquote_plus(item.partition("=")[0]) for item in text.split("&") if item)
    return [name for name in names if CREDENTIAL_PARAMETER.search(name)]


def redact_url(url: str) -> str:
    """url without its user:password@ and with the values of credential-like query parameters as ***."""
    parts = urllib.parse.urlsplit(url.strip())

    def redacted(text: str) -> str:
        items = (item.partition("=") for item in text.split("&") if item)
        return "&".join(
            f"{name}=***" if _credential_parameters(name) else name + sep + value for name, sep, value in items
        )

    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, redacted(parts.query), redacted(parts.fragment)))


def url_credentials_problem(url: str) -> str | None:
    """Why url may not be used as written (None: it may): it carries credentials. The message names the URL
    redacted, never the credentials."""
    parts = urllib.parse.urlsplit(url.strip())
    names = _credential_parameters(parts.query) + _credential_parameters(parts.fragment)
    carried = "user:password@" if "@" in parts.netloc else f"parameter {names[0]!r}" if names else None
    if carried is None:
        return None
    return (
        f"{redact_url(url)!r} carries credentials ({carried}), which would be written to context.json, the job key "
        f"and logs; give the endpoint its key by environment variable (api_key_env, or header_env for a header)"
    )


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


def foreign_listener_problem(url: str, allowed: bool) -> str | None:
    """Why a request may not go to url now (None: it may): plain http:// to this machine goes only to a server
    of this user, unless allowed; on a shared host anyone may listen on a loopback port."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http" or allowed or not is_loopback(parts.hostname):
        return None
    host, port = parts.hostname or "", parts.port or 80
    escape = f"or set extra_configs.{ALLOW_INSECURE_HTTP}: true if every user of this machine is trusted"
    try:
        others = sorted(listener_uids(host, port) - {os.geteuid()})
    except OSError as exc:
        return f"cannot tell who listens on {host}:{port} ({exc}); use https://, {escape}"
    if not others:
        return None
    return (
        f"someone else (uid {others[0]}) listens on {host}:{port}, and a plain-http request would hand them the "
        f"key; start your own server there, {escape}"
    )


def _walk(tree: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(place, key, value) for every mapping entry under tree, and (place, "", item) for every list item."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            place = child_path(where, key)
            yield place, str(key), value
            yield from _walk(value, place)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield child_path(where, index), "", value
            yield from _walk(value, child_path(where, index))


def check_credentials(sections: Mapping[str, Any], where: str) -> None:
    """A job's sections (after files and local patches): no credential in a header or a URL, key variables of
    our own, no key over plain http:// to another host. ConfigError naming the place."""
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
            elif isinstance(value, str) and (key in URL_KEYS or URL_SCHEME.match(value.strip())):
                try:
                    problem = url_credentials_problem(value) or (
                        insecure_url_problem(value, allowed) if key in URL_KEYS else None
                    )
                except ValueError as exc:  # urlsplit: e.g. an unclosed [ of an IPv6 address
                    problem = f"not a valid URL: {exc}"
                if problem:
                    raise ConfigError(place, problem)
