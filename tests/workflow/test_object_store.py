"""The job store in an object store: real snakemake with snakemake-storage-plugin-s3 against moto's S3
server on 127.0.0.1 (tests/helpers/s3_bucket.py), credentials from environment variables only.

A cold run must leave every job directory (artifacts, manifest, record, marker) and context_infos.json in
the bucket, with records identical to a local run's; a rerun from a directory that has never seen the run
(no .snakemake, no work_dir) must find every job in the bucket and do nothing; changing the evaluation's
ground-truth key must rerun that one job. A job stops before reading an upstream directory staged in part.
An upload cut off is not a finished job, and --forcerun deletes a job's old result when the job starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from sandflow.core.jobio import write_json
from sandflow.core.layout import CONTEXT_FILE, MANIFEST_FILE
from sandflow.run.runner import manifest_of
from sandflow.run.storage import STAGED, UPLOADED, Staging, stage_spec, staging_root

from helpers.s3_bucket import (
    BUCKET,
    S3_PROFILE,
    SECRET,
    keys,
    kill,
    make_run_dir,
    objects,
    start_store_run,
    stop_when,
    store_run,
    whole_jobs,
    write_config,
)
from helpers.snakemake import job_counts, snakemake

# ---- the mapping between planned and staged paths (no server needed) ------------------------------


def test_staging_root_is_what_precedes_the_declared_path():
    staged = "/w/.snakemake/storage/s3/bucket/prefix/out/jobs/H/0123456789abcdef"
    assert staging_root("out/jobs/H/0123456789abcdef", staged) == "/w/.snakemake/storage/s3/bucket/prefix/"
    # An absolute work_dir loses its leading slash under the plugin's prefix.
    assert (
        staging_root("/data/out/jobs/H/k", "/w/.snakemake/storage/s3/b/p/data/out/jobs/H/k")
        == "/w/.snakemake/storage/s3/b/p/"
    )
    with pytest.raises(ValueError, match="is not a staged copy of out/jobs/H/k"):
        staging_root("out/jobs/H/k", "/w/elsewhere/jobs/H/k")


def staged_job(root: Path, job_dir: str, artifacts: dict[str, bytes]) -> Path:
    """A job directory as a job leaves it (artifacts, manifest, context.json last), at its staged place."""
    local = root / job_dir
    for name, body in artifacts.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    local.mkdir(parents=True, exist_ok=True)
    write_json(local / MANIFEST_FILE, manifest_of(local))
    write_json(local / CONTEXT_FILE, {"values": [str(Path(job_dir) / name) for name in artifacts]})
    return local


def test_a_staged_spec_maps_job_directories_and_records_map_back(tmp_path):
    root = tmp_path / ".st/s3/b/p"
    upstream = staged_job(root, "out/jobs/G/j", {"slot/a.jsonl": b"{}\n"})
    (upstream / ".snakemake_timestamp").touch()  # Snakemake's, in every directory output: not an added artifact
    spec = {
        STAGED: "out/jobs",
        "job_dir": "out/jobs/H/k",
        "refs": [{"context": "out/jobs/G/j/context.json"}],
        "sections": {"dataset_path": "out/data.jsonl", "other": "out/jobsite/x"},
    }
    staged = stage_spec(spec, declared="out/jobs/H/k", local=str(root / "out/jobs/H/k"))
    assert staged["job_dir"] == f"{root}/out/jobs/H/k"
    assert staged["refs"] == [{"context": f"{root}/out/jobs/G/j/context.json"}]
    # Only paths under <work_dir>/jobs are the store's; the rest of work_dir is local.
    assert staged["sections"] == spec["sections"]
    staging = Staging.of(staged)
    record = {"values": [f"{root}/out/jobs/G/j/slot/a.jsonl", 0.5]}
    assert staging.stored(record) == {"values": ["out/jobs/G/j/slot/a.jsonl", 0.5]}
    assert staging.local(staging.stored(record)) == record


# What a cut-off upload leaves, as the plugin stages it for a downstream job: the plugin uploads a job
# directory's top-level files (context.json, manifest.json) first, then its artifacts one by one.
CUT_OFF = {
    "no record": lambda local: (local / CONTEXT_FILE).unlink(),
    "an artifact missing": lambda local: (local / "slot" / "b.jsonl").unlink(),
}


@pytest.mark.parametrize("cut", CUT_OFF)
def test_a_job_stops_before_reading_an_upstream_directory_staged_in_part(tmp_path, capsys, cut):
    root = tmp_path / ".st/s3/b/p"
    CUT_OFF[cut](staged_job(root, "out/jobs/G/j", {"slot/a.jsonl": b"a\n", "slot/b.jsonl": b"b\n"}))
    spec = {
        STAGED: "out/jobs",
        "job_dir": "out/jobs/H/k",
        "path_reads": [{"candidates": [{"job_dir": "out/jobs/G/j", "slot": "slot", "rel": "b.jsonl"}]}],
    }
    with pytest.raises(SystemExit) as stopped:
        stage_spec(spec, declared="out/jobs/H/k", local=str(root / "out/jobs/H/k"))
    assert stopped.value.code == 1
    problem = {
        "no record": "no context.json",
        "an artifact missing": "out/jobs/G/j/slot/b.jsonl was deleted after its job finished",
    }[cut]
    assert capsys.readouterr().err == (
        f"sandflow: job failed: upstream job directory out/jobs/G/j is not whole in the store ({problem}); "
        "delete its objects and out/jobs/G/j.uploaded from the store to run that job again\n"
    )


def test_a_spec_without_a_storage_provider_is_unchanged():
    spec = {"job_dir": "out/jobs/H/k", "refs": []}
    assert stage_spec(spec, declared="out/jobs/H/k", local="out/jobs/H/k/context.json") is spec
    assert not Staging.of(spec).active


# ---- real runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    requests = logging.getLogger("werkzeug")  # one log line per S3 request otherwise
    level = requests.level
    requests.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        requests.setLevel(level)


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A fresh bucket; credentials and endpoint only in the environment snakemake inherits."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandflow-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("SNAKEMAKE_STORAGE_S3_ENDPOINT_URL", s3_endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandflow-test",
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def comparable(record: bytes) -> dict:
    """A job record without its timing."""
    data = json.loads(record)
    return {k: v for k, v in data.items() if k not in ("started_at", "duration_s")}


@pytest.mark.slow
def test_jobs_live_in_the_bucket_rerun_from_elsewhere_is_a_no_op_and_a_late_change_reruns_one_job(
    s3, tmp_path, monkeypatch
):
    run_dir = make_run_dir(tmp_path / "machine_a")
    cold = store_run(run_dir, "exp")
    assert job_counts(cold) == {
        "data_pool_manipulation": 2,
        "evaluate_data": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    stored = objects(s3, "exp/out/")
    # Every job directory is whole in the bucket, its marker next to it.
    jobs = whole_jobs(stored)
    assert len(jobs) == 3
    # One sampled pool, two duplicated ones (the evaluation writes none).
    assert sum(len(json.loads(stored[f"{job}/{MANIFEST_FILE}"])) for job in jobs) == 3
    assert "context_infos.json" in stored and "report/metrics.csv" in stored
    # Nothing of the job store is left on this machine; local-only state is.
    assert not (run_dir / "out" / "jobs").exists()
    assert (run_dir / "out" / ".sandflow" / "lock").exists()
    assert (run_dir / "out" / ".sandflow" / "file-hashes.json").exists()
    assert not list((run_dir / ".snakemake" / "storage").rglob("context.json"))
    # Published copies are where the config says, on the machine that assembled the run.
    assert len(list((run_dir / "out" / "duplicated" / "iter_1").glob("*.jsonl"))) == 2

    # The same config run locally gives the same job keys and the same records (paths as planned).
    local_dir = make_run_dir(tmp_path / "local")
    assert job_counts(snakemake(local_dir, "experiment.yaml")) == job_counts(cold)
    local_jobs = sorted(
        str(p.parent.relative_to(local_dir / "out")) for p in (local_dir / "out").glob("jobs/*/*/context.json")
    )
    assert local_jobs == jobs
    for job in jobs:
        assert comparable(stored[f"{job}/context.json"]) == comparable(
            (local_dir / "out" / job / "context.json").read_bytes()
        )
    assert json.loads(stored["context_infos.json"]) == json.loads(
        (local_dir / "out" / "context_infos.json").read_text()
    )
    scores = json.loads(stored["context_infos.json"])[0]["pipeline_infos"][0]["job_infos"][2]
    assert scores["best"] == 0.0 and [r["pred_path"] for r in scores["results"]] == [
        "out/duplicated/iter_1/data_200_x1.jsonl",
        "out/duplicated/iter_1/data_200_x2.jsonl",
    ]

    # A rerun on this machine asks the bucket and finds every job there: nothing runs.
    assert job_counts(store_run(run_dir, "exp")) == {}

    # Another machine: nothing local but the config and the data. Every job is found in the bucket.
    # There the prefix comes as docs/guides/object-store.md says, from $SANDFLOW_S3_PREFIX through the profile.
    other = make_run_dir(tmp_path / "machine_b")
    monkeypatch.setenv("SANDFLOW_S3_PREFIX", f"s3://{BUCKET}/exp")
    assert job_counts(store_run(other, None)) == {}

    # A late change: the evaluation's ground truth. Only that job reruns (and the assembly).
    write_config(other, truth_key="truth2")
    late = store_run(other, "exp")
    assert job_counts(late) == {"evaluate_data": 1, "publication_record": 1, "context_infos": 1, "all": 1}
    infos = json.loads(objects(s3, "exp/out/")["context_infos.json"])
    assert infos[0]["pipeline_infos"][0]["job_infos"][2]["best"] > 0  # truth2 differs from score for 2 rows in 3

    # The secret reached the plugin through the environment only: no object, log or local file holds it.
    assert not [key for key, body in objects(s3, "").items() if SECRET.encode() in body]
    for directory in (run_dir, other):
        assert not [p for p in directory.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert SECRET not in (cold.stdout + cold.stderr + late.stdout + late.stderr)


@pytest.mark.slow
def test_an_upload_cut_off_is_not_a_finished_job_and_forcerun_deletes_the_old_result_first(s3, tmp_path):
    # Pools of 16 and 48 MB (400 rows of ~80 kB, half sampled, duplicated x1 and x2): uploading the duplicated
    # ones takes long enough for the test to stop the run in the middle.
    run_dir = make_run_dir(tmp_path / "machine_a", padding=80_000)
    hook = "cut/out/jobs/DataPoolManipulationHook/"
    run = start_store_run(run_dir, "cut")
    try:
        # The duplication job's record arrives in the bucket (the sampling job's did before): the plugin is
        # uploading its directory, top-level files first. Stop there.
        records = stop_when(
            run,
            run_dir,
            "a second pool job's record in the bucket",
            lambda: len(found := [key for key in keys(s3, hook) if key.endswith(f"/{CONTEXT_FILE}")]) == 2 and found,
        )
        job = next(
            key.rsplit("/", 1)[0]
            for key in records
            if json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["component"] == "data_pool_duplication"
        )
        held = sorted(key[len(job) + 1 :] for key in keys(s3, f"{job}/"))
        marker = keys(s3, f"{job}{UPLOADED}")
        staged = run_dir / ".snakemake" / "storage" / "s3" / BUCKET / job
        manifest = json.loads((staged / MANIFEST_FILE).read_text())
    finally:
        kill(run)
    # Where the stop landed: the record in the bucket, not every pool, no marker.
    assert CONTEXT_FILE in held and marker == []
    assert set(manifest) == {
        "extra_configs.export_path/data_200_x1.jsonl",
        "extra_configs.export_path/data_200_x2.jsonl",
    }
    assert set(manifest) - set(held), f"the whole directory was uploaded before the stop: {held}"

    # Another machine (nothing local but the config and the data): the duplication job runs again, the
    # sampling job does not, and the evaluation reads both pools whole.
    other = make_run_dir(tmp_path / "machine_b", padding=80_000)
    rerun = store_run(other, "cut")
    # (The publication record, which needs no job, was stored before the stop.)
    assert job_counts(rerun) == {"data_pool_manipulation": 1, "evaluate_data": 1, "context_infos": 1, "all": 1}
    stored = objects(s3, "cut/out/")
    assert len(whole_jobs(stored)) == 3
    infos = json.loads(stored["context_infos.json"])
    scores = infos[0]["pipeline_infos"][0]["job_infos"][2]
    assert scores["best"] == 0.0 and [result["mse"] for result in scores["results"]] == [0.0, 0.0]
    evaluation = next(job for job in whole_jobs(stored) if job.startswith("jobs/EvaluateDataHook/"))

    # --forcerun: Snakemake deletes the job's old objects (directory and marker) from the bucket before the
    # job runs again. Stop the forced run once they are gone and see that nothing of the old result is left.
    forced = start_store_run(other, "cut", "--forcerun", "evaluate_data")
    try:
        stop_when(forced, other, "the old evaluation deleted", lambda: not keys(s3, f"cut/out/{evaluation}"))
        left = keys(s3, f"cut/out/{evaluation}")
    finally:
        kill(forced)
    assert left == []  # neither its directory nor its marker: not taken for finished by the next run
    # The next run, from a third machine, runs the evaluation again (and only it).
    third = make_run_dir(tmp_path / "machine_c", padding=80_000)
    assert job_counts(store_run(third, "cut")) == {"evaluate_data": 1, "context_infos": 1, "all": 1}
    assert len(whole_jobs(objects(s3, "cut/out/"))) == 3


@pytest.mark.slow
def test_what_the_store_cannot_run_yet_stops_before_anything_with_exit_2(s3, tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    config = yaml.safe_load((run_dir / "experiment.yaml").read_text())
    config["iter_targets"] = ["anonymous.score.best <= 0.1"]
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = store_run(run_dir, "refused", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sandflow: error: --default-storage-provider s3: iter_targets cannot be used with a default storage "
        "provider yet (iteration decisions are read from local files while planning)"
    )
    assert not (run_dir / "out").exists() and objects(s3, "refused/") == {}


def test_the_profile_sets_no_credentials():
    settings = yaml.safe_load((S3_PROFILE / "config.yaml").read_text())
    assert settings["default-storage-provider"] == "s3"
    assert [name for name in settings if any(word in name for word in ("key", "token", "secret"))] == []
