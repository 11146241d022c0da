"""LLM inference executors (huggingface, vllm, api) and the built-in message helpers.

The api type talks to a real HTTP server on 127.0.0.1 (sandflow.devtools.loopback_chat) with
injected failures; huggingface runs a tiny GPT-2 built locally; vllm (a GPU
extra, absent here) is checked for its requirement message and, with a stand-in
module, for what our code hands the engine.
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # peft looks base models up on the hub when saving adapters

from sandflow.core.jobio import JobFailed
from sandflow.core.jsonl import read_objects
from sandflow.devtools.loopback_chat import ChatServer, answer_for
from sandflow.hooks.base import JobRun
from sandflow.hooks.llm import chat as llm_chat
from sandflow.hooks.llm import infer as llm_infer
from sandflow.hooks.llm import messages as llm_messages
from sandflow.hooks.llm.infer import api_requirements, infer_model, probe_via_model_infer, vllm_requirements

from helpers.job_runs import file_logger, job_run
from helpers.paths import TEST_DATA

DATA = TEST_DATA / "llm"
POOL_0 = DATA / "math_qa_pool_0.jsonl"
POOL_1 = DATA / "math_qa_pool_1.jsonl"
SECRET = "sk-test-0123456789-do-not-leak"
KEY_ENV = "SANDFLOW_TEST_LLM_KEY"
# As upstream's auto-prompt-optimization grader job.
GRADER = {
    "type": "api",
    "model": "qwen2.5-32b-instruct",
    "build_messages_func": "build_messages_for_math_qa",
    "parse_output_func": "parse_output",
    "func_kwargs": {"system_key": "prompt", "query_key": "question", "response_key": "answer"},
    "infer_res_key": "grades",
}


def make_job(
    tmp_path: Path,
    extra_configs: dict[str, Any],
    hook: str = "InferModelHook",
    dj_configs: dict[str, Any] | None = None,
) -> JobRun:
    """A job as the runner hands it over: export_path already points into the job directory."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    job_dir = tmp_path / "job"
    export = job_dir / "extra_configs.export_path"
    export.mkdir(parents=True, exist_ok=True)
    log = file_logger(
        f"sandflow.test.llm.{tmp_path}",
        tmp_path / "job.log",
        propagate=True,
        mode="a",
        formatter=logging.Formatter("%(levelname)s %(message)s"),
    )
    return job_run(
        hook, job_dir, dj_configs=dj_configs, extra_configs={**extra_configs, "export_path": str(export)}, log=log
    )


def job_log(tmp_path: Path) -> str:
    for handler in logging.getLogger(f"sandflow.test.llm.{tmp_path}").handlers:
        handler.flush()
    return (tmp_path / "job.log").read_text()


@pytest.fixture
def server():
    chat_server = ChatServer().start()
    yield chat_server
    chat_server.stop()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def api_config(server: ChatServer, **overrides: Any) -> dict[str, Any]:
    return {
        **GRADER,
        "model_params": {"base_url": server.url, "timeout": 5},
        "api_key_env": KEY_ENV,
        "retry_delay": 0.05,
        "dataset_path": [str(POOL_0), str(POOL_1)],
        **overrides,
    }


def test_module_is_light_enough_for_the_registry():
    """The registry may import it for the requirement checks: no torch, and no runner (which imports the registry)."""
    code = (
        "import sys, sandflow.hooks.llm.infer; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'sandflow.run.runner') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- message helpers


def test_build_messages_follows_upstream():
    item = {"system": "Be brief.", "query": "Hi?", "q": "Other?", "sys": ""}
    assert llm_messages.build_messages(item) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
    ]
    # An empty system prompt adds no system turn; keys come from kwargs.
    assert llm_messages.build_messages(item, system_key="sys", query_key="q") == [{"role": "user", "content": "Other?"}]
    with pytest.raises(KeyError):
        llm_messages.build_messages({"system": "x"})


def test_build_messages_for_math_qa_and_parse_output():
    item = {"prompt": "Grade it.", "question": "1+1?", "answer": "2"}
    messages = llm_messages.build_messages_for_math_qa(
        item, system_key="prompt", query_key="question", response_key="answer"
    )
    assert messages == [
        {"role": "system", "content": "Grade it."},
        {"role": "user", "content": "Question: 1+1?\nAnswer: 2"},
    ]
    assert llm_messages.build_messages_for_math_qa({"query": "q", "response": "r"}) == [
        {"role": "user", "content": "Question: q\nAnswer: r"}
    ]
    assert llm_messages.parse_output(" 4 ", item, anything=1) == " 4 "


def test_resolve_function_built_in_user_and_errors(monkeypatch):
    assert llm_messages.resolve_function("parse_output", "k") is llm_messages.parse_output
    monkeypatch.chdir(DATA)  # user modules are imported from the current directory
    function = llm_messages.resolve_function("user_funcs:parse_turns", "extra_configs.parse_output_func")
    assert function("2 turn(s): X", {}) == 2
    with pytest.raises(
        ValueError,
        match=r"extra_configs.build_messages_func: unknown function 'build_input'; "
        r"built-ins: build_messages, build_messages_for_math_qa, parse_output",
    ):
        llm_messages.resolve_function("build_input", "extra_configs.build_messages_func")
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_module_xyz'"):
        llm_messages.resolve_function("no_such_module_xyz:f", "extra_configs.parse_output_func")
    with pytest.raises(ValueError, match=r"module 'user_funcs' has no 'missing'"):
        llm_messages.resolve_function("user_funcs:missing", "extra_configs.parse_output_func")
    with pytest.raises(ValueError, match=r"must be a function name"):
        llm_messages.resolve_function(None, "extra_configs.parse_output_func")


# --------------------------------------------------------------------------- api


def test_api_inference_writes_upstream_files_and_never_leaks_the_key(tmp_path, server, api_key):
    job = make_job(tmp_path, api_config(server, sampling_params={"temperature": 0.0, "max_tokens": 16}))
    outputs = infer_model(job)

    export = Path(job.extra_configs["export_path"])
    assert outputs == [str(export / "math_qa_pool_0_inference.jsonl"), str(export / "math_qa_pool_1_inference.jsonl")]
    for source, output in zip((POOL_0, POOL_1), outputs):
        items, results = read_objects(source), read_objects(output)
        assert [{k: v for k, v in r.items() if k != "grades"} for r in results] == items  # same samples, same order
        assert [list(r) for r in results] == [list(i) + ["grades"] for i in items]  # result key appended last
        for item, result in zip(items, results):
            user_turn = f"Question: {item['question']}\nAnswer: {item['answer']}"
            expected = answer_for(
                [{"role": "system", "content": item["prompt"]}, {"role": "user", "content": user_turn}]
            )
            assert result["grades"] == expected
    # Upstream's jsonlines format: ensure_ascii off, default separators.
    first_line = Path(outputs[1]).read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith('{"prompt": "Note la réponse de 0 à 5.", "question": "Combien font 9 − 4 ?"')

    assert len(server.requests) == 3
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "qwen2.5-32b-instruct"
    assert request.body["temperature"] == 0.0 and request.body["max_tokens"] == 16

    for path in job.job_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path
    assert SECRET not in job_log(tmp_path)
    assert "api inference on" in job_log(tmp_path)


def test_api_single_input_and_full_endpoint_url(tmp_path, server, api_key):
    config = api_config(
        server,
        dataset_path=str(POOL_1),
        api_endpoint=server.url + "/chat/completions",
        model_params={"base_url": "http://127.0.0.1:9/unused"},
    )
    outputs = infer_model(make_job(tmp_path, config))
    assert [Path(p).name for p in outputs] == ["math_qa_pool_1_inference.jsonl"]
    assert len(read_objects(outputs[0])) == 1


def test_api_retries_with_exponential_back_off(tmp_path, server, api_key, monkeypatch):
    slept = []
    real_sleep = llm_chat.time.sleep
    test_thread = threading.current_thread()

    def recording_sleep(seconds: float) -> None:
        # time.sleep is process-wide: background threads (the server, lingering pools) sleep too
        if threading.current_thread() is test_thread:
            slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(llm_chat.time, "sleep", recording_sleep)
    server.fail_next(3, status=503)
    outputs = infer_model(make_job(tmp_path, api_config(server, dataset_path=str(POOL_1), retry_delay=0.1)))
    assert read_objects(outputs[0])[0]["grades"].startswith("2 turn(s): QUESTION: COMBIEN")
    assert slept == [0.1, 0.2, 0.4]
    times = [r.time for r in server.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= delay for gap, delay in zip(gaps, slept)), gaps  # the server really saw the pauses
    log = job_log(tmp_path)
    assert "failed (attempt 1/6): HTTP 503" in log and "attempt 3/6" in log and "attempt 4/6" not in log
    assert SECRET not in log


def test_api_gives_up_after_max_retry_num(tmp_path, server, api_key):
    server.fail_next(10, status=500)
    job = make_job(tmp_path, api_config(server, max_retry_num=2, retry_delay=0.01))
    with pytest.raises(JobFailed) as error:
        infer_model(job)
    message = str(error.value)
    assert message.startswith(
        f"request to {server.url}/chat/completions failed after 3 attempt(s) (extra_configs.max_retry_num=2): HTTP 500"
    )
    assert SECRET not in message and "***" in message  # the server echoed the header; it is redacted
    assert len(server.requests) == 3
    assert not any(Path(job.extra_configs["export_path"]).iterdir())  # nothing that looks like a result
    assert SECRET not in job_log(tmp_path)


def test_api_client_errors_fail_at_once(tmp_path, server, api_key):
    server.fail_next(1, status=401)
    with pytest.raises(JobFailed, match=r"failed: HTTP 401 Unauthorized") as error:
        infer_model(make_job(tmp_path, api_config(server)))
    assert SECRET not in str(error.value)
    assert len(server.requests) == 1


def test_api_timeout_is_retried_then_reported(tmp_path, server, api_key):
    server.hang_next(1, seconds=3.0)
    config = api_config(server, dataset_path=str(POOL_1), model_params={"base_url": server.url, "timeout": 1.0})
    outputs = infer_model(make_job(tmp_path, config))
    assert len(read_objects(outputs[0])) == 1 and len(server.requests) == 2
    assert "no reply within 1 s (extra_configs.model_params.timeout)" in job_log(tmp_path)

    server.hang_next(1, seconds=3.0)
    with pytest.raises(
        JobFailed,
        match=r"failed after 1 attempt\(s\) \(extra_configs.max_retry_num=0\): "
        r"no reply within 1 s",
    ):
        infer_model(make_job(tmp_path / "again", {**config, "max_retry_num": 0}))


def test_api_reply_without_answer_is_an_error(tmp_path, server, api_key):
    server.reply_without_choices_next()
    with pytest.raises(JobFailed, match=r"has no choices.0.message.content \(extra_configs.response_path\)"):
        infer_model(make_job(tmp_path, api_config(server)))


def test_api_batch_messages_with_user_functions(tmp_path, server, api_key, monkeypatch):
    monkeypatch.chdir(DATA)
    config = api_config(
        server,
        dataset_path=str(POOL_0),
        build_messages_func="user_funcs:build_two_questions",
        parse_output_func="user_funcs:parse_turns",
        func_kwargs={"query_key": "question", "suffix": " Explain."},
        infer_res_key="turns",
        api_key_env=None,
    )
    outputs = infer_model(make_job(tmp_path, config))
    assert [r["turns"] for r in read_objects(outputs[0])] == [[1, 1], [1, 1]]
    assert [r.body["messages"][0]["content"] for r in server.requests] == [
        "What is 2 + 3?",
        "What is 2 + 3? Explain.",
        "What is 7 * 6?",
        "What is 7 * 6? Explain.",
    ]
    assert "Authorization" not in server.requests[0].headers  # api_key_env: null sends no key


def test_api_requirements_report_the_key_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert api_requirements(None, {"type": "api", "api_key_env": KEY_ENV}) == [
        f"type 'api' needs the API key in the environment variable {KEY_ENV} (named by extra_configs.api_key_env), "
        f"which is not set"
    ]
    assert "OPENAI_API_KEY" in api_requirements(None, {"type": "api"})[0]
    assert api_requirements(None, {"type": "api", "api_key_env": None}) == []
    assert (
        "do not put API keys in configs"
        in api_requirements(None, {"type": "api", "api_key_env": None, "model_params": {"api_key": "x"}})[0]
    )
    monkeypatch.setenv(KEY_ENV, SECRET)
    assert api_requirements(None, {"type": "api", "api_key_env": KEY_ENV}) == []


def test_bad_configs_name_the_key(tmp_path, server, api_key):
    cases = [
        ({"dataset_path": str(DATA / "missing.jsonl")}, r"extra_configs.dataset_path: no such file: .*missing.jsonl"),
        ({"dataset_path": []}, r"extra_configs.dataset_path must be a jsonl path or a non-empty list"),
        ({"dataset_path": [str(POOL_0), str(POOL_0)]}, r"would both be written to .*math_qa_pool_0_inference.jsonl"),
        ({"type": "openai"}, r"extra_configs.type must be one of huggingface, vllm, api, got 'openai'"),
        ({"model": None}, r"extra_configs.model is required \(type 'api'\)"),
        ({"model_params": {"api_key": SECRET}}, r"model_params.api_key: do not put API keys in configs"),
        ({"max_retry_num": -1}, r"extra_configs.max_retry_num must be an integer >= 0"),
        ({"api_endpoint": "/embeddings"}, r"only chat-completions endpoints are supported"),
    ]
    for index, (override, pattern) in enumerate(cases):
        with pytest.raises(ValueError, match=pattern) as error:
            infer_model(make_job(tmp_path / str(index), api_config(server, **override)))
        assert SECRET not in str(error.value)
    assert server.requests == []


def test_huggingface_model_params_are_checked_before_loading(tmp_path):
    config = {
        "type": "huggingface",
        "model": str(tmp_path),
        "dataset_path": str(PROMPTS),
        "model_params": {"trust_remote_code": True},
    }
    with pytest.raises(
        ValueError,
        match=r"extra_configs.model_params.trust_remote_code is not supported by type "
        r"'huggingface' \(supported: device, torch_dtype, dtype\)",
    ):
        infer_model(make_job(tmp_path, config))


def test_probe_via_model_infer_answers_data_juicers_probe_sample(tmp_path, server, api_key):
    import datasets
    from data_juicer.utils.sample import random_sample

    data = tmp_path / "questions.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": "Grade the answer from 0 to 5.",
                    "question": f"What is {n} + 1?",
                    "answer": str(n + 1),
                    "truth": 5,
                }
            )
            + "\n"
            for n in range(20)
        )
    )
    config = {k: v for k, v in api_config(server).items() if k != "dataset_path"}
    answer_key = config["infer_res_key"]
    job = make_job(tmp_path, config, hook="ProbeViaModelInferHook", dj_configs={"dataset_path": str(data)})
    (whole,) = probe_via_model_infer(job)
    assert Path(whole).name == "questions_inference.jsonl" and len(read_objects(whole)) == 20
    rows = datasets.Dataset.from_list(read_objects(data))
    for ratio in (0.25, 1.5):  # the oracle: Data-Juicer's own uniform sampler, as upstream's probe calls it
        expected = random_sample(rows, ratio).to_list()
        sampled = make_job(
            tmp_path / str(ratio),
            config,
            hook="ProbeViaModelInferHook",
            dj_configs={"dataset_path": str(data), "data_probe_ratio": ratio, "data_probe_algo": "uniform"},
        )
        (output,) = probe_via_model_infer(sampled)
        answered = read_objects(output)
        assert len(answered) == {0.25: 5, 1.5: 30}[ratio]
        assert [{k: v for k, v in row.items() if k != answer_key} for row in answered] == expected
        assert all(row[answer_key] for row in answered)
        assert read_objects(sampled.job_dir / "probe_sample" / data.name) == expected
    selector = make_job(
        tmp_path / "topk",
        config,
        hook="ProbeViaModelInferHook",
        dj_configs={"dataset_path": str(data), "data_probe_algo": "topk_specified_field_selector"},
    )
    with pytest.raises(
        ValueError, match=r"^dj_configs.data_probe_algo='topk_specified_field_selector': only 'uniform'"
    ):
        probe_via_model_infer(selector)


# --------------------------------------------------------------------------- vllm


def test_vllm_requirements_name_what_is_missing(monkeypatch, tmp_path):
    message = vllm_requirements(None, {"type": "vllm"})
    assert message == [
        "type 'vllm' needs vllm and a CUDA GPU: vllm is not installed (pip install 'sandflow[gpu]' on a GPU machine)"
    ]
    monkeypatch.setattr(llm_infer.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(llm_infer, "GPU_DEVICE_GLOB", str(tmp_path / "nvidia[0-9]*"))
    assert "no GPU device" in vllm_requirements(None, {"type": "vllm"})[0]
    (tmp_path / "nvidia0").touch()
    assert vllm_requirements(None, {"type": "vllm"}) == []


def test_vllm_run_without_vllm_fails_clearly(tmp_path):
    job = make_job(tmp_path, {"type": "vllm", "model": "any", "dataset_path": str(POOL_0)})
    with pytest.raises(JobFailed, match=r"vllm is not installed \(pip install 'sandflow\[gpu\]'"):
        infer_model(job)


def test_vllm_engine_gets_upstream_arguments(tmp_path, monkeypatch):
    """vllm cannot run here: a stand-in module records what our code hands LLM / SamplingParams / chat."""
    calls: dict[str, Any] = {"chat": []}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            calls["sampling"] = kwargs

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            calls["llm"] = kwargs

        def chat(self, messages, sampling, use_tqdm=True):
            calls["chat"].append(messages)
            output = types.SimpleNamespace(text=f"vllm says {messages[-1]['content']}")
            return [types.SimpleNamespace(outputs=[output])]

    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "generation_config.json").write_text('{"max_new_tokens": 64}')
    job = make_job(
        tmp_path,
        {
            "type": "vllm",
            "model": str(model_dir),
            "dataset_path": str(POOL_1),
            "model_params": {"tensor_parallel_size": 2},
            "sampling_params": {"temperature": 0.5},
            "build_messages_func": "build_messages",
            "func_kwargs": {"query_key": "question"},
        },
    )
    outputs = infer_model(job)
    assert calls["llm"] == {"model": str(model_dir), "generation_config": "auto", "tensor_parallel_size": 2, "seed": 42}
    assert calls["sampling"] == {"temperature": 0.5, "max_tokens": 64}  # from the model's generation config
    assert calls["chat"] == [[{"role": "user", "content": "Combien font 9 − 4 ?"}]]
    assert read_objects(outputs[0])[0]["response"] == "vllm says Combien font 9 − 4 ?"


# --------------------------------------------------------------------------- huggingface

PROMPTS = DATA / "prompts.jsonl"
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "data juicer cleans text for small models",
    "small models learn from good data every day",
    "answer briefly and stay on topic",
] * 4
TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """One tiny GPT-2, the same with a chat template, and a LoRA adapter on it in hf_train's layout."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sandflow.hooks.hf.models import BASE_MODEL_SUBDIR
    from sandflow.hooks.hf.tiny_lm import build_tiny_causal_lm

    root = tmp_path_factory.mktemp("tiny_lm")
    plain = build_tiny_causal_lm(root / "plain", CORPUS)
    templated = Path(shutil.copytree(plain, root / "templated"))
    (templated / "chat_template.jinja").write_text(TEMPLATE)
    adapter = root / "lora"
    base = AutoModelForCausalLM.from_pretrained(plain, local_files_only=True)
    base.save_pretrained(adapter / BASE_MODEL_SUBDIR)
    peft_model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = BASE_MODEL_SUBDIR
    peft_model.save_pretrained(adapter)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(plain / name, adapter / name)
    return {"plain": plain, "templated": templated, "lora": adapter}


def greedy_reference(model_dir: Path, prompt: str, max_new_tokens: int) -> str:
    """What greedy decoding of the prompt gives, computed directly with transformers / peft."""
    from sandflow.hooks.hf.models import load_checkpoint

    model, tokenizer = load_checkpoint(model_dir)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.eval().generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def hf_config(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "huggingface",
        "model": str(model_dir),
        "dataset_path": str(PROMPTS),
        "sampling_params": {"max_new_tokens": 5},
        **overrides,
    }


@pytest.mark.slow  # importing torch + transformers and building the model: 30 s to minutes on 2 busy cores
def test_huggingface_greedy_plain_text_deterministic(tmp_path, tiny_models):
    first = infer_model(make_job(tmp_path / "a", hf_config(tiny_models["plain"])))
    second = infer_model(make_job(tmp_path / "b", hf_config(tiny_models["plain"])))
    assert [Path(p).name for p in first] == ["prompts_inference.jsonl"]
    assert Path(first[0]).read_bytes() == Path(second[0]).read_bytes()
    results = read_objects(first[0])
    assert [r["id"] for r in results] == [1, 2, 3]
    # No chat template: the message contents joined with newlines, decoded greedily.
    joined = "answer briefly\ndata juicer cleans text"
    assert results[1]["response"] == greedy_reference(tiny_models["plain"], joined, 5)
    assert results[0]["response"] == greedy_reference(tiny_models["plain"], "the quick brown fox", 5)
    assert "no chat template (messages joined as plain text)" in job_log(tmp_path / "a")


@pytest.mark.slow
def test_huggingface_chat_template_lora_and_context_limit(tmp_path, tiny_models):
    outputs = infer_model(
        make_job(
            tmp_path / "t",
            hf_config(
                tiny_models["templated"],
                dataset_path=str(POOL_0),
                build_messages_func="build_messages_for_math_qa",
                func_kwargs=GRADER["func_kwargs"],
            ),
        )
    )
    prompt = "<system>Grade the answer from 0 to 5.\n<user>Question: What is 2 + 3?\nAnswer: 5\n<assistant>"
    assert read_objects(outputs[0])[0]["response"] == greedy_reference(tiny_models["templated"], prompt, 5)

    outputs = infer_model(make_job(tmp_path / "l", hf_config(tiny_models["lora"], dataset_path=str(PROMPTS))))
    lora_answer = read_objects(outputs[0])[0]["response"]
    assert lora_answer == greedy_reference(tiny_models["lora"], "the quick brown fox", 5)

    # No max_new_tokens: upstream's default 512 is shortened to the model's 128 positions.
    outputs = infer_model(
        make_job(
            tmp_path / "c",
            hf_config(
                tiny_models["plain"],
                sampling_params={},
                dataset_path=str(POOL_1),
                func_kwargs={"query_key": "question"},
            ),
        )
    )
    assert len(read_objects(outputs[0])) == 1
    assert "max_new_tokens shortened to fit the model's context of 128 tokens" in job_log(tmp_path / "c")

    with pytest.raises(ValueError, match=r"extra_configs.model: cannot load .*nowhere from local files"):
        infer_model(make_job(tmp_path / "y", hf_config(tmp_path / "nowhere")))
