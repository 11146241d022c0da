"""sandflow new: every template writes an experiment that `sandflow check` accepts and `snakemake -n` plans."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.config.tree import leaves
from sandflow.plan.planner import plan_config
from sandflow.starter import TEMPLATES, template_files, template_root

from helpers.paths import REPO
from helpers.snakemake import job_counts, snakemake

NAMES = sorted(TEMPLATES)


def test_list_names_every_template(capsys: pytest.CaptureFixture):
    assert main(["new", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(TEMPLATES)
    assert {"probe-refine-process", "model-demo", "pool-search"} <= set(listed)


@pytest.mark.parametrize("name", NAMES)
def test_templates_are_the_repository_examples(name: str):
    """Copies stay byte-identical to configs/, and every rewrite still finds its text (else it would rot silently)."""
    template = TEMPLATES[name]
    contents = {rel: resource.read_bytes() for rel, resource in template_files(template_root(name))}
    for rel, source in template.copied_from:
        assert contents[rel] == (REPO / source).read_bytes(), f"{name}/{rel} differs from {source}"
    text = b"".join(content for rel, content in contents.items() if not rel.endswith(".jsonl")).decode()
    for old, _ in template.rewrites:
        assert old in text, f"{name}: rewrite of {old!r} matches nothing"


def test_pool_search_is_the_flagship_first_stage():
    flagship = yaml.safe_load((REPO / "configs/paper/recipe_search.yaml").read_text())
    (stage,) = [item["single_op"] for item in flagship["pipelines"] if "single_op" in item]
    starter = yaml.safe_load((template_root("pool-search") / "sandbox.yaml").read_text())
    (ours,) = [item["single_op"] for item in starter["pipelines"]]
    # the same jobs, in the same order, plus multi_op's ranking at the end; only sizes may differ
    names = [(job["hook"], job["meta_name"]) for section in stage.values() for job in section]
    assert [(job["hook"], job["meta_name"]) for section in ours.values() for job in section] == [
        *names,
        ("GeneralProbeHook", "rank"),
    ]


def config_strings(config_file: str) -> list[str]:
    """Every string value of a config and of the recipe files it names."""
    data = yaml.safe_load(Path(config_file).read_text())
    values = [value for _, value in leaves(data, ()) if isinstance(value, str)]
    recipes = [value for value in values if value.endswith(".yaml") and Path(value).is_file()]
    for recipe in recipes:
        values += [value for _, value in leaves(yaml.safe_load(Path(recipe).read_text()), ()) if isinstance(value, str)]
    return values


@pytest.mark.parametrize("name", NAMES)
def test_new_writes_an_experiment_check_accepts(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    assert main(["new", name, "exp"]) == 0
    assert Path("exp/README.md").read_text().count("sandflow run exp/sandbox.yaml") == 1
    assert "{dir}" not in Path("exp/README.md").read_text()
    capsys.readouterr()
    assert main(["check", "exp/sandbox.yaml"]) == 0
    assert capsys.readouterr().out.startswith("exp/sandbox.yaml: valid.")
    # every path the config and its recipes name is in the new directory: nothing points back at the repository
    paths = [value for value in config_strings("exp/sandbox.yaml") if "/" in value and not value.startswith("<")]
    assert paths and all(value.startswith("exp/") for value in paths), paths
    data = f"exp/{TEMPLATES[name].data_file}"
    assert data in paths and Path(data).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_data_option_fills_in_the_given_dataset(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    template = TEMPLATES[name]
    # a path YAML must quote: a space and a single quote
    mine = tmp_path / "my data" / "it's.jsonl"
    mine.parent.mkdir()
    mine.write_bytes((template_root(name) / template.data_file).read_bytes())
    assert main(["new", name, "exp", "--data", str(mine)]) == 0
    assert not Path(f"exp/{template.data_file}").exists(), "the sample is not copied when --data is given"
    assert "my data/it's.jsonl" in config_strings("exp/sandbox.yaml")
    plan = plan_config(load_config_file("exp/sandbox.yaml"))
    assert any("my data/it's.jsonl" in str(value) for job in plan.jobs for _, value in leaves(job.sections, ()))


def test_outside_the_current_directory_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert main(["new", "probe-refine-process", str(tmp_path / "there")]) == 0
    assert main(["check", str(tmp_path / "there" / "sandbox.yaml")]) == 0
    assert f"'{tmp_path}/there/data/sample.jsonl'" in (tmp_path / "there" / "process.yaml").read_text()


def test_new_refuses_a_non_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("exp").mkdir()
    Path("exp/sandbox.yaml").write_text("mine\n")
    assert main(["new", "probe-refine-process", "exp"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "sandflow: error: exp exists and is not empty: sandflow new writes only into a new or empty directory\n"
    )
    assert [p.name for p in Path("exp").iterdir()] == ["sandbox.yaml"]
    assert Path("exp/sandbox.yaml").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope", "exp"],
            "unknown template 'nope' (templates: probe-refine-process, model-demo, pool-search, user-hook; ",
        ),
        (["pool-search", "exp", "--data", "missing.jsonl"], "--data missing.jsonl: no such file"),
        (["model-demo", "my-demo"], "the directory must be a relative path of Python names"),
        (["model-demo"], "new needs a template and a directory"),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["new", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sandflow: error: {message}") or f": {message}" in err, err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_snakemake_plans_every_template(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert main(["new", name, "exp"]) == 0
    counts = job_counts(snakemake(tmp_path, "exp/sandbox.yaml", "-n"))
    bookkeeping = {"all", "context_infos", "publication_record"}
    planned = sum(count for rule, count in counts.items() if rule not in bookkeeping)
    assert planned == len(plan_config(load_config_file("exp/sandbox.yaml")).unique_jobs()) >= 4
