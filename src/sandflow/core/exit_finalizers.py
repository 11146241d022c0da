"""What a normal interpreter exit removes, done for a process that ends with os._exit: the weakref finalizers marked
to run at exit. tempfile.TemporaryDirectory removes its directory by one: every Snakemake Workflow makes one in
$TMPDIR (``snakemake<random>``) and one in its runtime source cache (~/.cache/snakemake/.../snakemake-runtime-cache,
a copy of the Snakefile and its rules), removed by its teardown or at exit; a run stopped by os._exit left both.
"""

from __future__ import annotations

import traceback
import weakref


def next_finalizer_number() -> int:
    """The number the next weakref finalizer gets: run_exit_finalizers(from_number=it) runs only those made later."""
    return next(weakref.finalize._index_iter)


def run_exit_finalizers(from_number: int = 0) -> None:
    """Run the living weakref finalizers marked to run at exit that are numbered from from_number, newest first as at
    exit; one that fails prints its traceback and the others still run."""
    registry = weakref.finalize._registry
    made = [(info.index, finalizer) for finalizer, info in list(registry.items()) if info.atexit]
    for number, finalizer in sorted(made, key=lambda pair: pair[0], reverse=True):
        if number >= from_number:
            try:
                finalizer()
            except Exception:
                traceback.print_exc()
