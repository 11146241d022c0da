"""The chat executors of LLM inference (hooks/llm/infer.py documents the types): an OpenAI-compatible API over
plain HTTP, vLLM's offline engine, and a local transformers model."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from sandflow.config.credentials import (
    ALLOW_INSECURE_HTTP,
    check_credentials,
    foreign_listener_problem,
    insecure_url_problem,
    redact_url,
    url_credentials_problem,
)
from sandflow.config.errors import ConfigError
from sandflow.hooks.llm.messages import Messages

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_ENDPOINT = "/chat/completions"
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the openai client's default, which upstream uses
DEFAULT_RESPONSE_PATH = "choices.0.message.content"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_NEW_TOKENS = 512  # Data-Juicer's update_sampling_params fallback
DEFAULT_SEED = 42
MAX_RETRY_DELAY_S = 60.0
RETRIABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
# Device nodes of NVIDIA GPUs; vLLM's CUDA build needs one (checking them avoids importing torch).
GPU_DEVICE_GLOB = "/dev/nvidia[0-9]*"
VLLM_INSTALL_HINT = "pip install 'sandflow[gpu]' on a GPU machine"

ChatFunction = Callable[[Messages], str]


class LLMInferenceError(RuntimeError):
    """A model could not answer (the message never contains the API key)."""


def load_chat_function(kind: str, config: Mapping[str, Any], log: logging.Logger) -> ChatFunction:
    if kind == "api":
        return ApiChat(config, log)
    if kind == "vllm":
        return load_vllm_chat(config, log)
    return load_huggingface_chat(config, log)


def _mapping(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"extra_configs.{key} must be a mapping, got {value!r}")
    return dict(value)


def _model_name(config: Mapping[str, Any]) -> str:
    model = config.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"extra_configs.model is required (type {config.get('type')!r}), got {model!r}")
    return model


def default_max_tokens(model: str) -> int:
    """Data-Juicer's rule: the model's generation config max_new_tokens / max_tokens, else 512."""
    generation_config = os.path.join(model, "generation_config.json")
    if os.path.isfile(generation_config):
        with open(generation_config, encoding="utf-8") as handle:
            values = json.load(handle)
        for key in ("max_tokens", "max_new_tokens"):
            if values.get(key):
                return int(values[key])
    return DEFAULT_MAX_NEW_TOKENS


# --------------------------------------------------------------------------- api


class ApiChat:
    """One OpenAI-compatible chat-completions endpoint: messages -> answer, with retries."""

    def __init__(self, config: Mapping[str, Any], log: logging.Logger) -> None:
        self.log = log
        self.model = _model_name(config)
        model_params = _mapping(config, "model_params")
        if "api_key" in model_params:
            raise ValueError(
                "extra_configs.model_params.api_key: do not put API keys in configs; set the environment "
                "variable named by extra_configs.api_key_env instead"
            )
        try:  # checked when planned too; again here for sections that arrive at run time
            check_credentials({"extra_configs": config}, "")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        self.url = endpoint_url(config.get("api_endpoint"), model_params.pop("base_url", None))
        self.allow_insecure_http = config.get(ALLOW_INSECURE_HTTP) is True
        self.opener = urllib.request.build_opener(_NoRedirect)
        # Checked for the configs' URLs at plan time; again here for $OPENAI_BASE_URL.
        problem = url_credentials_problem(self.url) or insecure_url_problem(self.url, self.allow_insecure_http)
        if problem:
            raise ValueError(problem)
        self.timeout = _positive_number(model_params.pop("timeout", DEFAULT_TIMEOUT_S), "model_params.timeout")
        extra_headers = model_params.pop("default_headers", None) or {}
        if not isinstance(extra_headers, Mapping):
            raise ValueError("extra_configs.model_params.default_headers must be a mapping")
        if model_params:
            log.warning("extra_configs.model_params %s ignored by type 'api'", ", ".join(sorted(model_params)))
        self.response_path = config.get("response_path") or DEFAULT_RESPONSE_PATH
        self.sampling_params = _mapping(config, "sampling_params")
        if self.sampling_params.get("stream"):
            raise ValueError("extra_configs.sampling_params.stream: streaming replies are not supported")
        self.max_retry_num = config.get("max_retry_num", 5)
        if not isinstance(self.max_retry_num, int) or isinstance(self.max_retry_num, bool) or self.max_retry_num < 0:
            raise ValueError(f"extra_configs.max_retry_num must be an integer >= 0, got {self.max_retry_num!r}")
        self.retry_delay = _positive_number(config.get("retry_delay", 1.0), "retry_delay", allow_zero=True)
        self.headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in extra_headers.items()}}
        env_name = config.get("api_key_env", DEFAULT_API_KEY_ENV)
        self._secrets: list[str] = []
        if env_name:
            self.headers["Authorization"] = f"Bearer {self._secret(str(env_name), 'api_key_env')}"
        for header, variable in _mapping(config, "header_env").items():
            self.headers[str(header)] = self._secret(str(variable), f"header_env[{header!r}]")

    def _secret(self, env_name: str, key: str) -> str:
        value = os.environ.get(env_name, "")
        if not value:
            raise ValueError(f"extra_configs.{key}: the environment variable {env_name} is not set")
        self._secrets.append(value)
        return value

    def __call__(self, messages: Messages) -> str:
        body = json.dumps({"messages": messages, "model": self.model, **self.sampling_params}).encode("utf-8")
        attempts = self.max_retry_num + 1
        attempt = 1
        while True:
            try:
                return self._answer(self._post(body))
            except _Transient as exc:
                if attempt == attempts:
                    raise LLMInferenceError(
                        f"request to {self.url} failed after {attempts} attempt(s) "
                        f"(extra_configs.max_retry_num={self.max_retry_num}): {exc}"
                    ) from None
                delay = min(self.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY_S)
                self.log.warning(
                    "request to %s failed (attempt %d/%d): %s; retrying in %.3g s",
                    self.url,
                    attempt,
                    attempts,
                    exc,
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def _post(self, body: bytes) -> Any:
        # Before every attempt: a retry may find someone else on the port a server left.
        problem = foreign_listener_problem(self.url, self.allow_insecure_http)
        if problem:
            raise LLMInferenceError(f"request to {self.url} refused: {problem}")
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in REDIRECT_STATUS:
                raise LLMInferenceError(self._redirect_refused(exc)) from None
            detail = self._redact((exc.fp.read(500) if exc.fp else b"").decode("utf-8", "replace").strip())
            message = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            if exc.code in RETRIABLE_STATUS:
                raise _Transient(message) from None
            raise LLMInferenceError(f"request to {self.url} failed: {message}") from None
        except TimeoutError:
            raise _Transient(f"no reply within {self.timeout:g} s (extra_configs.model_params.timeout)") from None
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"no reply within {self.timeout:g} s (extra_configs.model_params.timeout)") from None
            raise _Transient(f"connection failed: {self._redact(str(reason))}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise _Transient(f"reply is not JSON: {self._redact(payload[:200].decode('utf-8', 'replace'))!r}") from None

    def _redirect_refused(self, error: urllib.error.HTTPError) -> str:
        parts = urllib.parse.urlsplit(redact_url(urllib.parse.urljoin(self.url, error.headers.get("Location") or "")))
        origin = f"{parts.scheme}://{parts.netloc}"
        return (
            f"request to {self.url} answered HTTP {error.code}, a redirect to {origin}; redirects are not followed "
            f"(they would carry the key and header_env headers elsewhere): configure the final URL instead"
        )

    def _answer(self, reply: Any) -> str:
        node = reply
        for part in self.response_path.split("."):
            try:
                node = node[int(part)] if part.isdigit() and isinstance(node, list) else node[part]
            except (KeyError, IndexError, TypeError):
                text = self._redact(json.dumps(reply)[:300])
                raise LLMInferenceError(
                    f"reply from {self.url} has no {self.response_path} (extra_configs.response_path): {text}"
                ) from None
        return "" if node is None else str(node)  # a null content is an empty answer, as upstream

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _Transient(Exception):
    """A failure worth retrying."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Leaves a redirect to the caller as an HTTPError (urllib's default handler would follow it, and resend
    every header, the key included, to whatever host the Location names)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def endpoint_url(api_endpoint: Any, base_url: Any) -> str:
    """The chat-completions URL: a full ``api_endpoint``, or the endpoint path joined to the base URL."""
    endpoint = api_endpoint or DEFAULT_ENDPOINT
    if not isinstance(endpoint, str):
        raise ValueError(f"extra_configs.api_endpoint must be a URL or a path, got {endpoint!r}")
    if "chat" not in endpoint.lower():
        raise ValueError(f"extra_configs.api_endpoint={endpoint!r}: only chat-completions endpoints are supported")
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    base = base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_URL") or DEFAULT_BASE_URL
    if not isinstance(base, str):
        raise ValueError(f"extra_configs.model_params.base_url must be a URL, got {base!r}")
    return f"{base.rstrip('/')}/{endpoint.lstrip('/')}"


def _positive_number(value: Any, key: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"extra_configs.{key} must be a {'non-negative' if allow_zero else 'positive'} number of "
            f"seconds, got {value!r}"
        )
    return float(value)


# --------------------------------------------------------------------------- vllm


def load_vllm_chat(config: Mapping[str, Any], log: logging.Logger) -> ChatFunction:
    """vLLM's offline engine on the model; answers with ``LLM.chat``."""
    model = _model_name(config)
    model_params = _mapping(config, "model_params")
    sampling_params = _mapping(config, "sampling_params")
    if importlib.util.find_spec("vllm") is None:
        raise LLMInferenceError(f"type 'vllm' needs vllm and a CUDA GPU: vllm is not installed ({VLLM_INSTALL_HINT})")
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")  # as Data-Juicer sets it before building the engine
    from vllm import LLM, SamplingParams

    if model_params.get("tensor_parallel_size") is None:
        import torch  # already imported by vllm

        model_params["tensor_parallel_size"] = max(torch.cuda.device_count(), 1)
    model_params.pop("device", None)  # the engine picks its devices
    model_params.setdefault("seed", DEFAULT_SEED)
    sampling_params.setdefault("max_tokens", default_max_tokens(model))
    log.info("vllm: loading %s (tensor_parallel_size=%s)", model, model_params["tensor_parallel_size"])
    engine = LLM(model=model, generation_config="auto", **model_params)
    sampling = SamplingParams(**sampling_params)

    def chat(messages: Messages) -> str:
        return engine.chat(messages, sampling, use_tqdm=False)[0].outputs[0].text

    return chat


# --------------------------------------------------------------------------- huggingface

HF_MODEL_PARAMS = ("device", "torch_dtype", "dtype")


def load_huggingface_chat(config: Mapping[str, Any], log: logging.Logger) -> ChatFunction:
    """A causal LM and its tokenizer from local files (``hf_train.load_checkpoint``); answers by ``generate``
    (greedy and seeded unless sampling_params say otherwise)."""
    model_name = _model_name(config)
    model_params = _mapping(config, "model_params")
    unknown = sorted(set(model_params) - set(HF_MODEL_PARAMS))
    if unknown:
        raise ValueError(
            f"extra_configs.model_params.{unknown[0]} is not supported by type 'huggingface' "
            f"(supported: {', '.join(HF_MODEL_PARAMS)})"
        )
    generate_kwargs = _mapping(config, "sampling_params")

    import torch
    import transformers

    from sandflow.hooks.hf.models import BASE_MODEL_SUBDIR, load_checkpoint
    from sandflow.hooks.hf.train import single_thread

    device = model_params.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = model_params.get("dtype") or model_params.get("torch_dtype")
    seed = generate_kwargs.pop("seed", DEFAULT_SEED)
    try:
        model, tokenizer = load_checkpoint(model_name)
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"extra_configs.model: cannot load {model_name} from local files (nothing is downloaded): {first_line}"
        ) from None
    torch_dtype = getattr(torch, str(dtype), None) if dtype else None
    if dtype and not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"extra_configs.model_params.dtype must name a torch dtype (e.g. bfloat16), got {dtype!r}")
    model.to(device=device, dtype=torch_dtype).eval()
    # A LoRA checkpoint keeps its base, and the base's generation config, in BASE_MODEL_SUBDIR.
    lora_base = os.path.join(model_name, BASE_MODEL_SUBDIR)
    is_lora = os.path.isfile(os.path.join(model_name, "adapter_config.json"))
    generation_dir = lora_base if is_lora and os.path.isdir(lora_base) else model_name

    if "max_tokens" in generate_kwargs and "max_new_tokens" not in generate_kwargs:
        generate_kwargs["max_new_tokens"] = generate_kwargs.pop("max_tokens")  # the OpenAI/vLLM spelling
    generate_kwargs.setdefault("max_new_tokens", default_max_tokens(generation_dir))
    generate_kwargs.setdefault("do_sample", False)
    if tokenizer.pad_token_id is None:
        generate_kwargs.setdefault("pad_token_id", tokenizer.eos_token_id)
    context = getattr(model.config, "max_position_embeddings", None)
    templated = bool(getattr(tokenizer, "chat_template", None))
    log.info(
        "huggingface: %s on %s, %s, %s",
        model_name,
        device,
        "chat template" if templated else "no chat template (messages joined as plain text)",
        ", ".join(f"{k}={v}" for k, v in sorted(generate_kwargs.items())),
    )
    shortened = False

    def chat(messages: Messages) -> str:
        nonlocal shortened
        if templated:
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "\n".join(str(message.get("content", "")) for message in messages)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=not templated).to(device)
        n_prompt = inputs["input_ids"].shape[1]
        kwargs = dict(generate_kwargs)
        if context and n_prompt + kwargs["max_new_tokens"] > context:
            if n_prompt >= context:
                raise LLMInferenceError(f"a prompt of {n_prompt} tokens does not fit the model's context of {context}")
            kwargs["max_new_tokens"] = context - n_prompt
            if not shortened:
                log.warning("max_new_tokens shortened to fit the model's context of %d tokens", context)
                shortened = True
        transformers.set_seed(seed)  # per prompt: an answer does not depend on the samples before it
        # On CPU one thread, as hf_train: the result must not depend on the machine's core count (float
        # reductions split over threads sum in another order), and small models gain nothing from more.
        with torch.no_grad(), single_thread() if device == "cpu" else contextlib.nullcontext():
            generated = model.generate(**inputs, **kwargs)
        return tokenizer.decode(generated[0, n_prompt:], skip_special_tokens=True)

    return chat
