"""LLM inference on jsonl datasets: InferModelHook / ProbeViaModelInferHook types huggingface, vllm and api.

As DJ-Sandbox's ``LLMInferExecutor`` and its three subclasses: for every
input file in ``extra_configs.dataset_path`` (one path or a list), every
sample is turned into chat messages by ``build_messages_func``, each message
list is answered by the model, ``parse_output_func`` turns the answer into a
value, and the sample is written with that value under ``infer_res_key``
(default ``response``; a list of values when the build function returned
several message lists) to ``<export_path>/<input base name>_inference.jsonl``.
The result is the list of those files, in input order (one file: the runner
unpacks it, as upstream). ``func_kwargs`` go to both functions.

Types:

* ``api``: an OpenAI-compatible chat-completions endpoint over plain HTTP
  (standard library). ``model`` is the model name; ``api_endpoint`` is
  ``/chat/completions`` by default, joined to ``model_params.base_url`` or
  ``$OPENAI_BASE_URL`` / ``$OPENAI_API_URL`` (``https://api.openai.com/v1``
  otherwise), or a full URL; ``response_path`` (default
  ``choices.0.message.content``) is where the answer is in the reply;
  ``sampling_params`` go into the request body. The key is read from the
  environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``;
  null sends no key) and sent as ``Authorization: Bearer``; it never appears
  in outputs, logs or errors. A redirect is an error, not followed (it would
  carry the key elsewhere); plain ``http://`` goes only to this machine, and
  only to a listening socket of this user, unless ``allow_insecure_http``
  (config/credentials.py). A failed request is retried ``max_retry_num``
  times (default 5) after ``retry_delay`` seconds doubled each time (default
  1, at most 60); ``model_params.timeout`` (default 120 s) bounds each request.
* ``vllm``: vLLM's offline engine (``vllm.LLM(...).chat``), an optional GPU
  extra; ``vllm_requirements`` reports its absence before any job runs.
* ``huggingface``: transformers ``AutoModelForCausalLM`` from a local
  checkpoint directory (or the local Hugging Face cache: nothing is
  downloaded), or a LoRA adapter directory as ``hf_train`` saves it
  (loaded by ``hf_train.load_checkpoint``); ``model_params`` may set
  ``device`` (default cuda when available) and ``dtype`` / ``torch_dtype``;
  a job given a GPU that torch cannot see fails before loading
  (hf/devices.py). Both local types record their device and dtype in the
  job directory's ``device.json``.

Differences from upstream, and why:

* upstream's API client swallows every error and stores an empty answer (its
  retry loop never sees a failure); here transient failures (connection
  errors, timeouts, HTTP 408/409/429/5xx) are retried with exponential
  back-off and then fail the job with the last error; other HTTP errors fail
  at once; a reply without ``response_path`` is an error.
* ``model`` is required for ``api`` (upstream asks the server for its first
  model at run time, which no job key could record); keys are never read
  from configs (``model_params.api_key`` is refused), only from the environment.
* huggingface decodes greedily with a fixed seed unless ``sampling_params``
  sets ``do_sample`` (upstream's pipeline follows the model's generation
  config), applies the tokenizer's chat template when it has one and
  otherwise joins the message contents with newlines, and shortens
  ``max_new_tokens`` to fit the model's context, and on CPU generates on one
  thread (results independent of the core count); vllm gets ``seed: 42``
  unless ``model_params`` sets one. ``max_new_tokens`` / ``max_tokens``
  default as upstream: the model's generation config, else 512.
* every input file must exist (upstream skips missing ones, then crashes
  when none is left), two inputs with the same base name are an error
  (upstream overwrites the first result), blank lines in inputs are skipped,
  and each result file is written under a temporary name and renamed.
* ProbeViaModelInferHook runs the same inference on Data-Juicer's probe
  sample (``dj_configs.data_probe_ratio``, ``data_probe_algo: uniform``;
  src/sandflow/hooks/probe_sampling.py) of ``extra_configs.dataset_path``
  (default ``dj_configs.dataset_path``); the sample is kept in the job's
  ``probe_sample/`` directory. Upstream's probe knows only ``modelscope``
  (src/sandflow/hooks/modelscope.py).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import JobFailed
from sandflow.core.jsonl import read_objects
from sandflow.hooks.base import JobRun
from sandflow.hooks.llm.chat import (
    DEFAULT_API_KEY_ENV,
    GPU_DEVICE_GLOB,
    VLLM_INSTALL_HINT,
    LLMInferenceError,
    load_chat_function,
)
from sandflow.hooks.llm.messages import resolve_function

__all__ = [
    "infer_model",
    "probe_via_model_infer",
    "run_llm_inference",
    "api_requirements",
    "vllm_requirements",
]

TYPES = ("huggingface", "vllm", "api")
# --------------------------------------------------------------------------- hooks


def infer_model(job: JobRun) -> list[str]:
    """InferModelHook types huggingface / vllm / api: the inference result files, in input order."""
    record_placement(job, _extra_configs(job))
    with failures_as_job_failed():
        return run_llm_inference(_extra_configs(job), job.log)


def probe_via_model_infer(job: JobRun) -> list[str]:
    """ProbeViaModelInferHook types huggingface / vllm / api: inference on Data-Juicer's probe sample of the data."""
    from sandflow.hooks.probe_sampling import probe_settings, sampled_inputs

    config = dict(_extra_configs(job))
    dj_configs = job.dj_configs if isinstance(job.dj_configs, Mapping) else {}
    ratio = probe_settings(dj_configs)
    if config.get("dataset_path") is None and dj_configs.get("dataset_path") is not None:
        config["dataset_path"] = dj_configs["dataset_path"]
    inputs = [path for path, _ in planned_outputs(config.get("dataset_path"), config.get("export_path"))]
    config["dataset_path"] = sampled_inputs(inputs, ratio, job.job_dir)
    record_placement(job, config)
    with failures_as_job_failed():
        return run_llm_inference(config, job.log)


@contextlib.contextmanager
def failures_as_job_failed() -> Iterator[None]:
    """A model that cannot answer is a JobFailed: the runner reports it in one line, without a traceback.

    (sandflow.run.runner is imported here, not at the top: the registry may import this module for its
    requirement checks, and the runner imports the registry.)"""
    try:
        yield
    except LLMInferenceError as exc:
        raise JobFailed(str(exc)) from None


def record_placement(job: JobRun, config: Mapping[str, Any]) -> None:
    """device.json for the local model types (a job given a GPU that torch cannot see fails here, before loading)."""
    kind = config.get("type")
    if kind not in ("huggingface", "vllm"):
        return
    from sandflow.hooks.hf.devices import Placement, visible_device, write_device_record

    params = config.get("model_params") if isinstance(config.get("model_params"), Mapping) else {}
    device = "cuda" if kind == "vllm" else str(params.get("device") or visible_device())
    dtype = params.get("dtype") or params.get("torch_dtype") or "as saved"
    write_device_record(job.job_dir, Placement(device=device, precision=str(dtype)))


def _extra_configs(job: JobRun) -> Mapping[str, Any]:
    if not isinstance(job.extra_configs, Mapping):
        raise ValueError(f"{job.hook} needs extra_configs with type one of {', '.join(TYPES)}")
    return job.extra_configs


# --------------------------------------------------------------------------- requirement checks


def api_requirements(dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None) -> list[str]:
    """The API key's environment variable must be set; a key written into the config is refused."""
    if not isinstance(extra_configs, Mapping):
        return []
    missing = []
    model_params = extra_configs.get("model_params")
    if isinstance(model_params, Mapping) and "api_key" in model_params:
        missing.append(
            "extra_configs.model_params.api_key: do not put API keys in configs; set the environment "
            "variable named by extra_configs.api_key_env (default OPENAI_API_KEY) instead"
        )
    env_name = extra_configs.get("api_key_env", DEFAULT_API_KEY_ENV)
    if env_name is None or env_name == "":
        return missing
    if not isinstance(env_name, str):
        missing.append(f"extra_configs.api_key_env must be the name of an environment variable, got {env_name!r}")
    elif not os.environ.get(env_name):
        missing.append(
            f"type 'api' needs the API key in the environment variable {env_name} "
            f"(named by extra_configs.api_key_env), which is not set"
        )
    return missing


def vllm_requirements(dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None) -> list[str]:
    """vllm must be importable and an NVIDIA GPU device present (checked without importing torch or vllm)."""
    if importlib.util.find_spec("vllm") is None:
        return [f"type 'vllm' needs vllm and a CUDA GPU: vllm is not installed ({VLLM_INSTALL_HINT})"]
    if not glob.glob(GPU_DEVICE_GLOB):
        return [
            f"type 'vllm' needs vllm and a CUDA GPU: no GPU device ({GPU_DEVICE_GLOB}) on this machine "
            f"({VLLM_INSTALL_HINT})"
        ]
    return []


# --------------------------------------------------------------------------- the inference loop


def run_llm_inference(config: Mapping[str, Any], log: logging.Logger) -> list[str]:
    """Answer every sample of every input file; write ``<export_path>/<base>_inference.jsonl`` for each."""
    kind = config.get("type")
    if kind not in TYPES:
        raise ValueError(f"extra_configs.type must be one of {', '.join(TYPES)}, got {kind!r}")
    build = resolve_function(config.get("build_messages_func", "build_messages"), "extra_configs.build_messages_func")
    parse = resolve_function(config.get("parse_output_func", "parse_output"), "extra_configs.parse_output_func")
    func_kwargs = config.get("func_kwargs") or {}
    if not isinstance(func_kwargs, Mapping):
        raise ValueError(f"extra_configs.func_kwargs must be a mapping, got {func_kwargs!r}")
    infer_res_key = config.get("infer_res_key", "response")
    if not isinstance(infer_res_key, str) or not infer_res_key:
        raise ValueError(f"extra_configs.infer_res_key must be a non-empty string, got {infer_res_key!r}")
    outputs = planned_outputs(config.get("dataset_path"), config.get("export_path"))

    chat = load_chat_function(kind, config, log)
    for input_path, output_path in outputs:
        log.info("%s inference on %s -> %s", kind, input_path, output_path)
        lines = []
        for item in read_objects(input_path):
            messages_list = build(item, **func_kwargs)
            # One message list (its first element a dict) or a batch of them, as upstream.
            single = len(messages_list) > 0 and not isinstance(messages_list[0], list)
            batch = [messages_list] if single else messages_list
            results = [parse(chat(messages), item, **func_kwargs) for messages in batch]
            item[infer_res_key] = results[0] if single else results
            lines.append(json.dumps(item, ensure_ascii=False) + "\n")  # upstream's jsonlines format
        write_text_atomic(output_path, "".join(lines))
        log.info("%d sample(s) answered", len(lines))
    return [output for _, output in outputs]


def planned_outputs(dataset_path: Any, export_path: Any) -> list[tuple[str, str]]:
    """(input file, result file) pairs; the export directory is created."""
    paths = [dataset_path] if isinstance(dataset_path, str) else dataset_path
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(
            f"extra_configs.dataset_path must be a jsonl path or a non-empty list of them, got {dataset_path!r}"
        )
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"extra_configs.dataset_path: no such file: {', '.join(missing)}")
    if not isinstance(export_path, str) or not export_path:
        raise ValueError("extra_configs.export_path (a directory) is required")
    os.makedirs(export_path, exist_ok=True)
    outputs: dict[str, str] = {}
    pairs = []
    for path in paths:
        output = os.path.join(export_path, f"{os.path.splitext(os.path.basename(path))[0]}_inference.jsonl")
        if output in outputs:
            raise ValueError(
                f"extra_configs.dataset_path: {outputs[output]} and {path} would both be written to {output}"
            )
        outputs[output] = path
        pairs.append((path, output))
    return pairs
