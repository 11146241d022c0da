"""A bayes search's study storage: no password on the command line or in an error, no journal through a symlink."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sandflow.config.errors import ConfigError
from sandflow.hpo_storage import JOURNAL_NAME, STORAGE_ENV, open_storage, storage_url

SECRET = "s3cret-pw-7Q"
URL_WITH_PASSWORD = f"postgresql://sweeper:{SECRET}@127.0.0.1:9/study"


def test_a_password_on_the_command_line_is_refused_in_one_line_naming_the_environment_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        storage_url(URL_WITH_PASSWORD)
    assert caught.value.where == "--storage" and STORAGE_ENV in str(caught.value)
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)
    assert storage_url("sqlite:///study.db") == "sqlite:///study.db"  # no password: taken as given


def test_the_url_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, URL_WITH_PASSWORD)
    assert storage_url(None) == URL_WITH_PASSWORD
    monkeypatch.delenv(STORAGE_ENV)
    assert storage_url(None) is None  # the journal file


def test_a_database_that_cannot_be_opened_is_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_storage(str(tmp_path), URL_WITH_PASSWORD)  # no server there (and maybe no driver): either fails
    message = str(caught.value)
    assert message.startswith("--storage: cannot open postgresql://sweeper:***@127.0.0.1:9/study: ")
    assert SECRET not in message and "\n" not in message


def test_the_journal_is_private_and_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    open_storage(str(work_dir), None)
    journal = work_dir / "hpo" / JOURNAL_NAME
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600

    planted = tmp_path / "planted"
    (planted / "hpo").mkdir(parents=True)
    victim = tmp_path / "neighbours-file"
    victim.write_text("theirs\n")
    (planted / "hpo" / JOURNAL_NAME).symlink_to(victim)
    with pytest.raises(ConfigError, match=rf"^hpo: .*{JOURNAL_NAME} is a symlink; sandflow does not write through it"):
        open_storage(str(planted), None)
    assert victim.read_text() == "theirs\n"


def test_the_command_refuses_a_password_before_doing_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandflow.hpo_search", "--configfile", "missing.yaml", "--storage", URL_WITH_PASSWORD],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, STORAGE_ENV: ""},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("sandflow: error: hpo_search: --storage: the URL holds a password")
    assert len(result.stderr.splitlines()) == 1 and SECRET not in result.stderr and not list(tmp_path.iterdir())
