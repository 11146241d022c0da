"""README.md is for users: small, no figures that go stale, links that resolve, and a config that really runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.core.jsonl import read_objects

from helpers.config_guide import examples
from helpers.paths import REPO
from helpers.snakemake import edited_config, job_counts, snakemake

README = REPO / "README.md"
CONFIG = "my_experiment.yaml"
PAGES = [
    README,
    REPO / "CONTRIBUTING.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted(REPO.glob("docs/guides/*.md")),
]


def readme_config() -> str:
    return examples(README)[CONFIG]


def links(page: Path) -> list[str]:
    """The targets of the page's Markdown links and images that point into the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    return [t.partition("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]


def test_the_readme_is_at_most_8_kb_and_names_no_timings_or_test_counts():
    text = README.read_text()
    assert len(README.read_bytes()) <= 8192
    assert not re.findall(r"\b\d+(?:\.\d+)? ?(?:ms|s|min|minutes|seconds|hours)\b|\b\d+ tests\b", text)


def test_the_readme_links_every_guide_and_every_link_resolves():
    readme_links = {(REPO / target).resolve() for target in links(README)}
    for page in [REPO / "CONTRIBUTING.md", REPO / "docs/hooks.md", *REPO.glob("docs/guides/*.md")]:
        assert page.resolve() in readme_links, f"README.md does not link {page.relative_to(REPO)}"
    for page in PAGES:
        for target in links(page):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links {target}, which does not exist"


def test_the_readme_config_has_15_lines_and_checks(demo_dir: Path, capsys: pytest.CaptureFixture[str]):
    text = readme_config()
    assert len(text.splitlines()) - 1 <= 15  # the first line names the file
    Path(CONFIG).write_text(text)
    assert main(["check", CONFIG]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"{CONFIG}: valid. 3 jobs (3 distinct)")


@pytest.mark.slow
def test_the_readme_config_drops_the_planted_samples_and_a_new_k_reruns_refine_and_process(demo_dir: Path):
    Path(CONFIG).write_text(readme_config())
    snakemake(demo_dir, CONFIG)
    samples = read_objects(Path("configs/data/demo/demo-dataset.jsonl"))
    kept = read_objects(Path("outputs/demo-process/iter_1/demo-processed.jsonl"))
    assert {s["meta"]["id"] for s in kept} == {s["meta"]["id"] for s in samples if not s["meta"]["planted"]}
    assert (
        yaml.safe_load(Path("outputs/my_recipe.yaml").read_text())["process"]
        != yaml.safe_load(Path("configs/demo/process.yaml").read_text())["process"]
    )

    def new_k(config: dict) -> None:
        config["refine_recipe_job_configs"][0]["extra_configs"]["k"] = 2

    rerun = snakemake(demo_dir, edited_config(demo_dir, CONFIG, "k2.yaml", new_k))
    assert job_counts(rerun) == {
        "refine_recipe_via_k_sigma": 1,
        "process_data": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
