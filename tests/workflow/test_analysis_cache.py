"""The analysis cache (hooks/dj_analysis_cache.py, dj_figure_store.py): each Data-Juicer analysis figure of a stat
column is drawn once per work_dir, and every analysis file is the same bytes as with the cache empty or off.

Hooks run in-process on real py-data-juicer (offline) as jobs of a work_dir; the demo runs end to end with real
snakemake, each job in its own process.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from sandflow.core.layout import stats_cache_dir
from sandflow.hooks.dj_figure_store import ANALYSIS_SUBDIR, figures_size

from helpers.dj_jobs import FIGURES_LINE, process_recipe, run_dj_job
from helpers.env import OFFLINE_ENV, environ, fresh_python
from helpers.paths import REPO
from helpers.snakemake import snakemake

PROBE = "ProbeViaAnalyzerHook"
DEMO_OPS = yaml.safe_load((REPO / "configs/demo/process.yaml").read_text())["process"]
STATS = ["alnum_ratio", "char_rep_ratio", "num_words", "special_char_ratio", "text_len"]
# Data-Juicer's analysis of the demo recipe: two tables, a histogram and a box plot per stat, one correlation.
ANALYSIS_FILES = sorted(
    ["overall.csv", "overall.md", "stats-corr-pearson.png"] + [f"{s}-{k}.png" for s in STATS for k in ("hist", "box")]
)
FIGURES = len(ANALYSIS_FILES) - 2


@pytest.fixture(scope="module")
def offline_env():
    with environ(OFFLINE_ENV):
        yield


def with_args(ops: list[dict], op: str, **args: object) -> list[dict]:
    changed = copy.deepcopy(ops)
    for entry in changed:
        if op in entry:
            entry[op].update(args)
    return changed


@pytest.mark.slow
def test_a_threshold_change_redraws_no_figure_and_a_changed_stat_redraws_its_own(tmp_path, offline_env):
    data = tmp_path / "data.jsonl"
    data.write_text("".join((REPO / "configs/data/demo/demo-dataset.jsonl").read_text().splitlines(True)[:80]))
    work = tmp_path / "work"
    first = run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    assert first.figures_line() == (0, FIGURES, 0)
    assert sorted(first.analysis_files()) == ANALYSIS_FILES

    # one threshold changed: the same stats, every figure copied from the cache (another project name each time: not
    # the key of a probe stored before, hooks/dj_probe_reuse.py, so the analysis runs)
    threshold = with_args(DEMO_OPS, "text_length_filter", max_len=90000)
    again = run_dj_job(work, PROBE, "threshold", {**process_recipe(data, threshold), "project_name": "again"})
    assert again.figures_line() == (FIGURES, 0, 0)
    empty = run_dj_job(tmp_path / "empty", PROBE, "threshold", process_recipe(data, threshold))
    off = run_dj_job(tmp_path / "off", PROBE, "threshold", process_recipe(data, threshold), cache=False)
    assert empty.figures_line() == (0, FIGURES, 0) and off.figures_line() is None
    assert again.analysis_files() == empty.analysis_files() == off.analysis_files() == first.analysis_files()

    # in a process of its own (as a job runs), an analysis with every figure stored never imports pyplot
    fresh = fresh_python(
        f"""
        import json, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "tests")!r})
        from helpers.dj_jobs import run_dj_job
        job = run_dj_job(Path({str(work)!r}), {PROBE!r}, "fresh", {{**{process_recipe(data, threshold)!r}, "project_name": "fresh"}})
        print(json.dumps([job.figures_line(), "matplotlib.pyplot" in sys.modules, str(job.job_dir)]))
        """,
        timeout=300,
    )
    figures, imported_pyplot, job_dir = json.loads(fresh.splitlines()[-1])
    assert (tuple(figures), imported_pyplot) == ((FIGURES, 0, 0), False)
    assert {path.name: path.read_bytes() for path in sorted(Path(job_dir, "dj_work/analysis").iterdir())} == (
        first.analysis_files()
    )

    # rep_len changed: char_rep_ratio's figures and the correlation are drawn again, the others copied
    rep_len = with_args(threshold, "character_repetition_filter", rep_len=12)
    changed = run_dj_job(work, PROBE, "rep_len", process_recipe(data, rep_len))
    assert changed.figures_line() == (FIGURES - 3, 3, 0)
    fresh = run_dj_job(tmp_path / "empty-rep-len", PROBE, "rep_len", process_recipe(data, rep_len))
    assert changed.analysis_files() == fresh.analysis_files()
    differ = {name for name, body in changed.analysis_files().items() if again.analysis_files()[name] != body}
    assert differ == {"char_rep_ratio-hist.png", "char_rep_ratio-box.png", "stats-corr-pearson.png"} | {
        "overall.csv",
        "overall.md",
    }
    figures = Path(stats_cache_dir(str(work))) / ANALYSIS_SUBDIR
    assert (figures_size(figures).keys, figures_size(figures).figures) == (FIGURES + 3, FIGURES + 3)
    kinds = sorted(json.loads(path.read_text())["figure"] for path in figures.glob("*/key.json"))
    assert kinds == sorted(["draw_hist", "draw_box"] * 6 + ["correlation-pearson"] * 2)


# --- the demo end to end: a threshold changed in the last job --------------------------------------------------


def analysis_job(work: Path) -> Path:
    """The job directory of the demo's last job (the analysis of the processed rows)."""
    (link,) = work.glob("pipelines/*/iter_1/analysis_processed_data*")
    return link.resolve()


def analysis_digests(job_dir: Path) -> dict[str, str]:
    manifest = json.loads((job_dir / "manifest.json").read_text())
    return {name: digest for name, digest in manifest.items() if name.startswith("dj_work/analysis/")}


@pytest.mark.slow
def test_demo_rerun_with_a_threshold_changed_in_the_last_job_draws_no_figure(tmp_path):
    (tmp_path / "configs").mkdir()
    for part in ("demo", "data/demo"):
        shutil.copytree(REPO / "configs" / part, tmp_path / "configs" / part)
    # the last job reads its own copy of the recipe, so that it alone changes (as benchmarks/stats_cache.py does)
    shutil.copy(tmp_path / "configs/demo/process.yaml", tmp_path / "configs/demo/eval.yaml")
    sandbox = yaml.safe_load((tmp_path / "configs/demo/sandbox.yaml").read_text())
    sandbox["evaluation_job_configs"][0]["dj_configs"] = "configs/demo/eval.yaml"
    (tmp_path / "configs/demo/sandbox.yaml").write_text(yaml.safe_dump(sandbox, sort_keys=False))
    with environ({}, unset=("SANDFLOW_STATS_CACHE",)):
        snakemake(tmp_path, "configs/demo/sandbox.yaml")
        work = tmp_path / "outputs/demo-sandbox"
        cold = analysis_job(work)
        recipe = yaml.safe_load((tmp_path / "configs/demo/eval.yaml").read_text())
        recipe["process"] = with_args(recipe["process"], "text_length_filter", max_len=90000)
        (tmp_path / "configs/demo/eval.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        snakemake(tmp_path, "configs/demo/sandbox.yaml")
    rerun = analysis_job(work)
    assert rerun != cold

    def log(job_dir: Path) -> str:
        return (work / "logs" / PROBE / f"{job_dir.name}.log").read_text()

    # the processed rows' stats differ from the probe's (fewer rows): the cold run drew every figure of them; the
    # rerun's analysis differs from it only in a threshold, so it copied its files (hooks/dj_probe_reuse.py)
    (line,) = FIGURES_LINE.findall(log(cold))
    assert tuple(int(n) for n in line) == (0, FIGURES, 0)
    assert "probe reuse: 15 file(s) of an earlier probe" in log(rerun) and not FIGURES_LINE.search(log(rerun))
    digests = analysis_digests(rerun)
    assert sorted(Path(name).name for name in digests) == ANALYSIS_FILES
    assert digests == analysis_digests(cold)  # each job in its own process: the same bytes as drawn fresh
