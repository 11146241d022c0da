"""exit_with_error's wait for what Snakemake's logger plugins still have to print (src/sandflow/run/run_state.py)."""

from __future__ import annotations

import logging
import queue
import threading
from logging.handlers import QueueHandler, QueueListener

from sandflow.run.run_state import wait_for_logged_records


class SlowTerminal(logging.Handler):
    """A logger plugin's handler, as Snakemake runs it: on a QueueListener's thread, here a slow one."""

    def __init__(self, printing: threading.Event) -> None:
        super().__init__()
        self.printing = printing
        self.printed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.printing.wait(timeout=10)
        self.printed.append(record.getMessage())


def test_the_error_line_waits_for_what_the_plugins_were_given_to_print():
    snakemake_logger = logging.getLogger("snakemake.logging")
    printing = threading.Event()
    terminal = SlowTerminal(printing)
    records: queue.Queue = queue.Queue(-1)
    listener = QueueListener(records, terminal)
    handler = QueueHandler(records)
    snakemake_logger.addHandler(handler)
    listener.start()
    try:
        snakemake_logger.warning("9 job(s) to run")
        threading.Timer(0.2, printing.set).start()  # the plugin prints only after a while
        wait_for_logged_records()
        assert terminal.printed == ["9 job(s) to run"]  # printed before the error line would be
    finally:
        snakemake_logger.removeHandler(handler)
        listener.stop()
