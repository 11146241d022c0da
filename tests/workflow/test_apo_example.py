"""The auto-prompt-optimization example (configs/apo/) end to end, and the grader and server it runs on.

The end-to-end tests run the real snakemake on a copy of configs/apo/sandbox.yaml
against sandflow.devtools.loopback_chat serving configs/apo/grader.py in this process;
they share one run and go in order: cold run, results, no-op rerun. The
expected scores are worked out by hand from the grader's rules (below), not
computed with the grader.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from sandflow.core.jsonl import read_objects
from sandflow.devtools.loopback_chat import ChatServer, load_answer

from helpers.chat import chat_server
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import interruptible, job_counts, snakemake

CONFIG = "configs/apo/sandbox.yaml"
WORK = Path("outputs/apo")
GRADER_SPEC = "configs/apo/grader.py:grade"
SECRET = "apo-test-key-5f0c9e1d-never-written"
KEY_ENV = "APO_GRADER_API_KEY"

# The planted questions, in file order: "ok" (every calculation right, truth 1), "last" (the last
# calculation is wrong), "early" (an earlier one is wrong, the last one right for the wrong input),
# "reasoning" (wrong method, right arithmetic). Each wrong calculation: (annotation index, right value).
QUESTION_KINDS = [
    "ok",
    "last",
    "ok",
    "early",
    "ok",
    "last",
    "ok",
    "reasoning",
    "ok",
    "last",
    "ok",
    "early",
    "ok",
    "last",
]
WRONG_CALCULATIONS = {1: [(1, 97)], 3: [(0, 104)], 5: [(0, 168)], 9: [(1, 30)], 11: [(0, 150)], 13: [(1, 24)]}

# Per prompt (prompts.jsonl order), by the grader's rules over the 14 questions
# (7 ok, 4 last, 2 early, 1 reasoning):
# 0 vague, ONLY a number: 0.5 everywhere -> every squared error 0.25.
# 1 final answer, ONLY a number: misses early (2) and reasoning (1): 3 errors of 1 in 14.
# 2 each calculation, prose: the 6 wrong calculations come as prose (format errors);
#   of the 8 numbers only the reasoning one is wrong: 1/8.
# 3 each calculation, ONLY a number: only the reasoning one is wrong: 1/14.
# 4 final answer, prose: the 4 "last" come as prose; of 10 numbers, early (2) + reasoning (1) wrong: 3/10.
EXPECTED_MSE = [Fraction(1, 4), Fraction(3, 14), Fraction(1, 8), Fraction(1, 14), Fraction(3, 10)]
EXPECTED_FORMAT_ERRORS = [0, 0, 6, 0, 4]
# Ascending by (mse, format_error): 3 (1/14), 2 (1/8), 1 (3/14) | 0 (1/4), 4 (3/10).
EXPECTED_RANKING = [3, 2, 1, 0, 4]
TOP_N = 3

POOLS = [f"prompts_ignore_stats_{i}.jsonl" for i in range(5)]
JOINED = [f"prompts_ignore_stats__questions_cartesian_join_{i}_0.jsonl" for i in range(5)]
INFERRED = [f"prompts_ignore_stats__questions_cartesian_join_{i}_0_inference.jsonl" for i in range(5)]
POOLS_DIR = "outputs/apo/single_prompt_data_pools/iter_1"
JOINED_DIR = "outputs/apo/datasets_to_infer/iter_1"
INFERRED_DIR = "outputs/apo/infer_results/iter_1"
MERGED = "outputs/apo/merged_top_generated_prompts/iter_1/new_prompts.jsonl/prompts_ignore_stats__merged.jsonl"


def grader_request(prompt: str, question: dict) -> list[dict[str, str]]:
    """What build_messages_for_math_qa sends for one (prompt, question) pair."""
    return [
        {"role": "system", "content": prompt},
        {"role": "user", "content": f"Question: {question['question']}\nAnswer: {question['answer']}"},
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the grader and its data (fast)


@pytest.fixture(scope="module")
def grade():
    return load_answer(str(REPO / GRADER_SPEC))


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return read_objects(REPO / "configs/data/apo/questions.jsonl")


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return [item["prompt"] for item in read_objects(REPO / "configs/apo/prompts.jsonl")]


def test_questions_carry_the_planted_mistakes(grade, questions):
    grader_module = sys.modules[grade.__module__]
    assert len(questions) == len(QUESTION_KINDS) == 14
    assert [q["truth"] for q in questions] == [1 if kind == "ok" else 0 for kind in QUESTION_KINDS]
    for index, question in enumerate(questions):
        annotations = grader_module.ANNOTATION.findall(question["answer"])
        wrong = [
            (position, grader_module.evaluate(expr))
            for position, (expr, stated) in enumerate(annotations)
            if grader_module.evaluate(expr) != Fraction(stated)
        ]
        assert wrong == WRONG_CALCULATIONS.get(index, []), question["question"]
        if QUESTION_KINDS[index] == "last":
            assert wrong[0][0] == len(annotations) - 1
        if QUESTION_KINDS[index] == "early":
            assert wrong[0][0] < len(annotations) - 1
        assert question["answer"].endswith(f"#### {annotations[-1][1]}")  # the final answer is the last result


def test_grader_rules(grade, questions, prompts):
    ok, last, early = questions[0], questions[1], questions[3]
    # each calculation, ONLY a number
    assert [grade(grader_request(prompts[3], q)) for q in (ok, last, early)] == ["1", "0", "0"]
    # final answer only: an early mistake goes unnoticed
    assert [grade(grader_request(prompts[1], q)) for q in (ok, last, early)] == ["1", "0", "1"]
    assert grade(grader_request(prompts[0], last)) == "0.5"
    # without "ONLY a number" a found mistake comes as prose, nothing found as the bare score
    assert grade(grader_request(prompts[2], early)) == "Score: 0. 13*8 is 104, not 96."
    assert grade(grader_request(prompts[2], ok)) == "1"
    assert grade(grader_request(prompts[4], last)) == "Score: 0. 135-38 is 97, not 107."
    assert (
        grade([{"role": "system", "content": prompts[3]}, {"role": "user", "content": "Answer: no calculations"}])
        == "1"
    )


def test_grader_arithmetic_is_exact_and_never_evaluates_code(grade):
    grader_module = sys.modules[grade.__module__]
    assert grader_module.evaluate("800*.1") == 80  # 80.00000000000001 in floats
    assert grader_module.evaluate("20*1/4") == 5
    assert grader_module.evaluate("-(3 - 5) % 3") == 2
    check = "You are a strict math grader. Check each calculation. Return ONLY a number."
    for expr in ("__import__('os').getcwd()", "2**10", "x+1", "1/0"):
        answer = f"Answer: <<{expr}=4>>4"
        assert grade([{"role": "system", "content": check}, {"role": "user", "content": answer}]) == "0", expr
    prose = [{"role": "system", "content": "Check each calculation."}, {"role": "user", "content": "<<abs(-4)=4>>4"}]
    assert grade(prose) == "Score: 0. abs(-4) is not a calculation I can check."


def test_loopback_chat_command_serves_the_grader_until_interrupted(questions, prompts):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandflow.devtools.loopback_chat", "--port", str(port), "--grader", GRADER_SPEC],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        line = process.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1"
        assert line == f"serving {url} (chat completions at {url}/chat/completions); Ctrl-C to stop\n"
        body = json.dumps({"model": "apo-grader", "messages": grader_request(prompts[3], questions[1])}).encode()
        request = urllib.request.Request(
            f"{url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.load(response)
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": "0"}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_loopback_chat_command_errors():
    bad_spec = subprocess.run(
        [sys.executable, "-m", "sandflow.devtools.loopback_chat", "--grader", "configs/apo/nope.py:grade"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_spec.returncode == 2
    assert bad_spec.stderr.strip().endswith("error: --grader: no such file: configs/apo/nope.py")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "sandflow.devtools.loopback_chat", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 2
    assert (
        busy.stderr
        == f"python -m sandflow.devtools.loopback_chat: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_a_failing_answer_function_is_a_client_error():
    def broken(messages):
        raise ZeroDivisionError("division by zero")

    server = ChatServer(answer=broken).start()
    try:
        request = urllib.request.Request(
            f"{server.url}/chat/completions", data=b'{"messages": []}', headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code == 400
        assert json.load(error.value.fp) == {
            "error": {"message": "answer function failed: ZeroDivisionError: division by zero"}
        }
    finally:
        server.stop()


# --------------------------------------------------------------------------- end to end (slow)


@pytest.fixture(scope="module")
def served(grade):
    with chat_server(grade) as server:
        yield server


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, served: ChatServer) -> Path:
    directory = copy_from_repo(tmp_path_factory.mktemp("apo"), "configs/apo", "configs/data/apo")
    config_path = directory / CONFIG
    config = yaml.safe_load(config_path.read_text())
    inference = config["pipelines"][0]["grader_model_prompt_optimization"]["execution_job_configs"][2]
    assert inference["extra_configs"]["model_params"]["base_url"] == "http://127.0.0.1:8765/v1"
    inference["extra_configs"]["model_params"]["base_url"] = served.url  # this run's free port
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


@pytest.fixture(scope="module")
def cold(run_dir: Path, served: ChatServer) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, SECRET)
        started = time.time()
        first = snakemake(run_dir, CONFIG)
        seconds = time.time() - started
        rerun = snakemake(run_dir, CONFIG)
    return {
        "counts": job_counts(first),
        "rerun_counts": job_counts(rerun),
        "seconds": seconds,
        "requests": list(served.requests),
    }


@pytest.mark.slow
def test_cold_run_runs_each_job_once_and_asks_the_grader_every_pair(cold: dict, prompts, questions):
    print(f"cold run: {cold['seconds']:.1f} s")
    assert cold["counts"] == {
        "data_pool_manipulation": 3,
        "infer_model": 1,
        "evaluate_data": 1,
        "general_probe": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    requests = cold["requests"]
    assert len(requests) == len(prompts) * len(questions) == 70
    assert {r.path for r in requests} == {"/v1/chat/completions"}
    assert {r.headers["Authorization"] for r in requests} == {f"Bearer {SECRET}"}
    assert {r.body["model"] for r in requests} == {"apo-grader"}
    # prompt-major, question-minor: the cartesian join's order, inferred pool by pool
    assert [r.body["messages"] for r in requests] == [grader_request(p, q) for p in prompts for q in questions]


@pytest.mark.slow
def test_pools_joins_and_grades_are_published_under_upstream_names(
    run_dir: Path, cold: dict, prompts, questions, grade
):
    assert sorted(p.name for p in (run_dir / POOLS_DIR).iterdir()) == POOLS
    assert sorted(p.name for p in (run_dir / JOINED_DIR).iterdir()) == JOINED
    assert sorted(p.name for p in (run_dir / INFERRED_DIR).iterdir()) == INFERRED
    for i, prompt in enumerate(prompts):
        assert read_objects(run_dir / POOLS_DIR / POOLS[i]) == [{"prompt": prompt}]
        assert read_objects(run_dir / JOINED_DIR / JOINED[i]) == [{"prompt": prompt, **q} for q in questions]
        graded = read_objects(run_dir / INFERRED_DIR / INFERRED[i])
        assert [{k: v for k, v in g.items() if k != "grades"} for g in graded] == [
            {"prompt": prompt, **q} for q in questions
        ]
        assert [g["grades"] for g in graded] == [grade(grader_request(prompt, q)) for q in questions]


@pytest.mark.slow
def test_context_infos_hold_the_mse_per_prompt_ranking_and_merged_prompts(run_dir: Path, cold: dict, prompts):
    infos = json.loads((run_dir / WORK / "context_infos.json").read_text())
    assert [i["iter"] for i in infos] == [1]
    first, second = infos[0]["pipeline_infos"]
    assert first["pipeline_name"] == "grader_model_prompt_optimization"
    assert second["pipeline_name"] == "select_and_merge_data_pools"
    construct, join, infer, evaluate = first["job_infos"]
    rank, merge = second["job_infos"]

    assert construct == {
        "meta_name": "construct_single_prompt_data_pools",
        "single_prompt_data_pool_paths": [f"{POOLS_DIR}/{name}" for name in POOLS],
    }
    assert join == {
        "meta_name": "join_prompts_and_datasets_to_infer",
        "datasets_to_infer_with_updated_prompts": [f"{JOINED_DIR}/{name}" for name in JOINED],
    }
    assert infer == {
        "meta_name": "grader_model_inference",
        "grader_model_inference_result": [f"{INFERRED_DIR}/{name}" for name in INFERRED],
    }

    assert list(evaluate) == ["meta_name", "single_prompt_eval_results", "min_mse"]
    assert evaluate["meta_name"] == "grades_evaluation"
    results = evaluate["single_prompt_eval_results"]
    assert [r["pred_path"] for r in results] == [f"{INFERRED_DIR}/{name}" for name in INFERRED]
    assert all(r["gt_path"] == r["pred_path"] for r in results)  # truth read from the graded files, as upstream
    assert [r["mse"] for r in results] == [float(m) for m in EXPECTED_MSE]
    assert [r["format_error"] for r in results] == EXPECTED_FORMAT_ERRORS
    assert evaluate["min_mse"] == float(min(EXPECTED_MSE)) == 1 / 14

    # Paths a job passes on from an earlier job (the ranked pools, the graded files above) read as published.
    assert list(rank) == ["meta_name", "top3_prompt_data_pool_paths"]
    assert rank["meta_name"] == "rank_single_prompt_data_pools"
    top = rank["top3_prompt_data_pool_paths"]
    assert top == [f"{POOLS_DIR}/{POOLS[i]}" for i in EXPECTED_RANKING[:TOP_N]]
    assert [read_objects(run_dir / p) for p in top] == [[{"prompt": prompts[i]}] for i in EXPECTED_RANKING[:TOP_N]]
    assert merge == {"meta_name": "merge_single_prompt_data_pools", "merged_top_prompt_dataset": MERGED}
    expected = "".join(json.dumps({"prompt": prompts[i]}, ensure_ascii=False) + "\n" for i in EXPECTED_RANKING[:TOP_N])
    assert (run_dir / MERGED).read_text(encoding="utf-8") == expected

    (ranking_csv,) = (
        run_dir / WORK / "pipelines/select_and_merge_data_pools/iter_1/rank_single_prompt_data_pools"
    ).glob("plots/ranking.csv")
    rows = [line.split(",") for line in ranking_csv.read_text().splitlines()[1:]]
    assert [row[1] for row in rows] == [POOLS[i] for i in EXPECTED_RANKING]
    assert [row[4] for row in rows] == ["true"] * TOP_N + ["false"] * (len(POOLS) - TOP_N)


@pytest.mark.slow
def test_rerun_does_nothing_and_the_key_is_never_written(run_dir: Path, cold: dict):
    """Nothing under the run directory holds the key: job files, logs, .snakemake/, nor Snakemake's report."""
    assert cold["rerun_counts"] == {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, SECRET)
        snakemake(run_dir, CONFIG, "--report", "report.html")
    assert (run_dir / "report.html").stat().st_size > 10_000
    checked = 0
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path
            checked += 1
    assert checked > 30
