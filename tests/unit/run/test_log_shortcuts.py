"""Snakemake's logging of a job through run/log_shortcuts.py: a shell command record that each handler it would
reach drops (Snakemake's default filter, shell commands off) is not made; with shell commands on, or a handler
without that filter, it is made and handled as Snakemake's own logger handles it, as is every other record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from snakemake import (
    api,  # noqa: F401 (Snakemake's entry point first: its modules import each other)
    jobs,
)
from snakemake.logging import DefaultFilter
from snakemake.logging import logger as snakemakes_logger
from snakemake_interface_logger_plugins.common import LogEvent

from sandflow.run import log_shortcuts


class Kept(logging.Handler):
    def __init__(self, printshellcmds: bool | None) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        if printshellcmds is not None:  # Snakemake's default filter, as it sets it up for a dry run
            self.addFilter(DefaultFilter(None, False, False, True, printshellcmds))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    log_shortcuts.shell_commands_dropped_unmade()
    records: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counted(*args, **kwargs):
        records.append(factory(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(snakemakes_logger, "handlers", list(snakemakes_logger.handlers))
    monkeypatch.setattr(snakemakes_logger, "propagate", False)
    monkeypatch.setattr(snakemakes_logger, "level", logging.INFO)
    logging.setLogRecordFactory(counted)
    yield records
    logging.setLogRecordFactory(factory)


def log_a_job() -> None:
    """What Snakemake's Job.log_info logs for a script rule's job (the job record, then its shell command's)."""
    jobs.logger.info(" Rule: evaluate_data, Jobid: 3", extra=dict(event=LogEvent.JOB_INFO, jobid=3))
    jobs.logger.info("Shell command: None", extra=dict(event=LogEvent.SHELLCMD, shellcmd=None, indent=False))


def test_a_shell_command_record_every_handler_drops_is_not_made(made: list[logging.LogRecord]):
    default = Kept(printshellcmds=False)
    snakemakes_logger.handlers[:] = [default]  # (pytest adds its capturing handlers to the test's loggers)
    log_a_job()
    assert [record.event for record in made] == [LogEvent.JOB_INFO]  # Snakemake's own makes both
    assert default.records == made and made[0].funcName == "log_a_job"  # its caller, as Snakemake's logger finds


@pytest.mark.parametrize("printshellcmds", [True, None])
def test_a_shell_command_record_a_handler_keeps_is_made_and_handled(
    made: list[logging.LogRecord], printshellcmds: bool | None
):
    default, other = Kept(printshellcmds=False), Kept(printshellcmds=printshellcmds)
    snakemakes_logger.handlers[:] = [default, other]
    log_a_job()
    assert [record.event for record in made] == [LogEvent.JOB_INFO, LogEvent.SHELLCMD]
    assert default.records == made[:1] and other.records == made
    assert made[1].funcName == "log_a_job" and made[1].getMessage() == "Shell command: None"


def test_a_parent_loggers_handler_counts_while_the_record_propagates(made: list[logging.LogRecord]):
    snakemakes_logger.handlers[:] = [Kept(printshellcmds=False)]
    parents = Kept(printshellcmds=None)
    snakemakes_logger.propagate = True
    logging.getLogger().addHandler(parents)
    try:
        log_a_job()
    finally:
        logging.getLogger().removeHandler(parents)
    assert [record.event for record in parents.records] == [LogEvent.JOB_INFO, LogEvent.SHELLCMD]
