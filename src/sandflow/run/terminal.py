"""Snakemake's terminal for a sandflow run (``--logger sandflow``): one line per finished job, errors in full.

Snakemake's default terminal prints a block per job (input, output, log, reason, wildcards, resources) and
the run's set-up; this logger prints the jobs to run once, then for each job that finishes
``[done/total] rule, seconds: where its results are``, a failed job's rule and log, warnings and errors as
Snakemake words them, and the run summary sandflow logs at the end (run/summary.py). Snakemake's own log
file under .snakemake/log/ keeps the full default text. A dry run lists each job on one line.

Snakemake finds logger plugins by module name; ``snakemake_logger_plugin_sandflow`` (next to ``sandflow``
in src/) is this module under that name. It imports nothing but the standard library and the plugin
interface: Snakemake imports every installed logger plugin whenever it starts.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

# Set-up lines of Snakemake's that say nothing about this run's jobs (their events are dropped as well).
SET_UP = (
    "Building DAG of jobs",
    "Using shell:",
    "Provided cores:",
    "Select jobs to execute",
    "Conda environments: ignored",
    "Singularity containers: ignored",
    "Group jobs: inactive",
    "Assuming unrestricted shared filesystem",
    "DAG of jobs will be updated",
)
QUIET_EVENTS = {LogEvent.WORKFLOW_STARTED, LogEvent.RESOURCES_INFO, LogEvent.JOB_STARTED, LogEvent.SHELLCMD}
CONTEXT_FILE = "context.json"  # a job rule's output: its job directory is where its results are
FAILED_LOG_LINES = 20  # of a failed job's log, with --show-failed-logs
# The frame Snakemake's error block names for a job the job server ran: sandflow's hand-off, not where it failed.
HAND_OFF_FRAME = os.path.join("sandflow", "run", "dispatch_shortcuts.py") + '", line '


def shown_path(path: str) -> str:
    """Relative to the working directory when under it (as the user wrote their config), else as is."""
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    return path if relative.startswith("..") else relative


def results_of(outputs: list[str]) -> str:
    """Where a job's results are: its job directory for a job rule, else its first output."""
    if not outputs:
        return ""
    first = outputs[0].split(" (")[0]  # Snakemake appends flags: "(directory)", "(retrieve from storage)"
    if os.path.basename(first) == CONTEXT_FILE:
        first = os.path.dirname(first)
    more = f" (+{len(outputs) - 1} more)" if len(outputs) > 1 else ""
    return f"{shown_path(first)}{more}"


def log_tail(path: str, lines: int = FAILED_LOG_LINES) -> Iterator[str]:
    """The last lines of a log, each progress bar redraw (carriage return) reduced to its last state."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read().splitlines()[-lines:]
    except OSError as exc:
        yield f"    (cannot read {path}: {exc.strerror})"
        return
    for line in text:
        yield f"    {line.rstrip().split(chr(13))[-1]}"


class TerminalHandler(LogHandlerBase):
    """Snakemake's log records, for a person at the terminal."""

    def __post_init__(self) -> None:
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr  # stdout: a dry run's listing
        self.jobs: dict[int, dict[str, Any]] = {}  # jobid -> rule, outputs, logs, start time
        self.finished: list[str] = []  # lines waiting for the progress record that numbers them

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False  # Snakemake's default filter: --quiet, --verbose and --printshellcmds still apply

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for line in self.lines(record):
                self.stream.write(line + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)

    def lines(self, record: logging.LogRecord) -> list[str]:
        event = getattr(record, "event", None)
        if event in QUIET_EVENTS:
            return []
        if event == LogEvent.RUN_INFO:
            return [self.jobs_to_run(getattr(record, "stats", {}))]
        if event == LogEvent.JOB_INFO:
            return self.job_started(record)
        if event == LogEvent.JOB_FINISHED:
            self.finished.append(self.job_finished(record))
            return []
        if event == LogEvent.PROGRESS:
            numbered = [f"[{record.done}/{record.total}] {line}" for line in self.finished]  # type: ignore[attr-defined]
            self.finished = []
            return numbered
        if event == LogEvent.JOB_ERROR:
            return self.job_failed(record)
        message = record.getMessage() if record.msg is not None else ""
        if record.levelno <= logging.INFO and message.startswith(SET_UP):
            return []
        if record.levelno >= logging.ERROR:
            message = "\n".join(line for line in message.split("\n") if HAND_OFF_FRAME not in line)
        return [message] if message else []

    def jobs_to_run(self, stats: dict[str, int]) -> str:
        counts = ", ".join(f"{rule} {count}" for rule, count in stats.items() if rule != "total")
        verb = "would run" if self.common_settings.dryrun else "to run"
        return f"{stats.get('total', 0)} job(s) {verb}: {counts}"

    def job_started(self, record: logging.LogRecord) -> list[str]:
        info = record.__dict__
        self.jobs[info["jobid"]] = {
            "rule": info["rule_name"],
            "outputs": list(info["output"]),
            "started": record.created,
        }
        if self.common_settings.dryrun:  # the listing a dry run is for, a line per job
            where = results_of(list(info["output"]))
            return [f"{info['rule_name']}{': ' + where if where else ''} ({info['reason']})"]
        return []

    def job_finished(self, record: logging.LogRecord) -> str:
        job = self.jobs.pop(record.__dict__["job_id"], None)
        if job is None:
            return record.getMessage()
        where = results_of(job["outputs"])
        return f"{job['rule']}, {record.created - job['started']:.1f} s{': ' + where if where else ''}"

    def job_failed(self, record: logging.LogRecord) -> list[str]:
        info = record.__dict__
        logs = [path.split(" (")[0] for path in info.get("log") or []]
        where = f"; log: {', '.join(shown_path(path) for path in logs)}" if logs else ""
        message = f" ({info['rule_msg']})" if info.get("rule_msg") else ""
        lines = [f"error: {info['rule_name']} failed (jobid {info['jobid']}){message}{where}"]
        if self.common_settings.show_failed_logs:
            for path in logs:
                lines += [f"  last lines of {shown_path(path)}:", *log_tail(path)]
        return lines
