"""Where a bayes search keeps its Optuna study: a journal file in the work_dir, or a database.

A database URL can carry a password. On the command line it would show in `ps` to every user of a login node
and in shell history, so ``--storage`` refuses one: the URL comes from the environment variable
``SANDFLOW_HPO_STORAGE`` instead, and no error sandflow prints shows the password. The journal is opened only
after it is known not to be a symlink (a neighbour's planted link would have Optuna append to their file).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from sandflow.config.errors import ConfigError
from sandflow.core import layout
from sandflow.core.private_fs import UnsafePath, open_no_follow

STORAGE_ENV = "SANDFLOW_HPO_STORAGE"
JOURNAL_NAME = "optuna-journal.log"


def storage_url(from_command_line: str | None) -> str | None:
    """The study's database URL (None: the journal file): --storage without a password, else the environment."""
    if from_command_line is not None:
        if url_password(from_command_line) is not None:
            raise ConfigError(
                "--storage",
                f"the URL holds a password, which others on this host can read from the command line; "
                f"put the URL in the environment variable {STORAGE_ENV} instead",
            )
        return from_command_line
    return os.environ.get(STORAGE_ENV) or None


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:  # a malformed URL: the database library says what is wrong with it
        return None


def without_password(text: str, url: str) -> str:
    password = url_password(url)
    return text.replace(password, "***") if password else text


def open_storage(work_dir: str, url: str | None) -> Any:
    """Optuna storage for the study: the database at url, or the journal file in <work_dir>/hpo."""
    import optuna

    if url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as error:  # any driver's error: one line, and never the password
            message = without_password(f"{type(error).__name__}: {error}".splitlines()[0], url)
            raise ConfigError("--storage", f"cannot open {without_password(url, url)}: {message}") from None
    from optuna.storages.journal import JournalFileBackend

    journal = os.path.join(layout.hpo_dir(work_dir), JOURNAL_NAME)
    os.makedirs(os.path.dirname(journal), exist_ok=True)
    try:
        os.close(open_no_follow(journal, "a"))  # created 600, or refused if a symlink was planted there
    except UnsafePath as error:
        raise ConfigError("hpo", str(error)) from None
    return optuna.storages.JournalStorage(JournalFileBackend(journal))
