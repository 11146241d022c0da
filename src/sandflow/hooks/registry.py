"""Every DJ-Sandbox hook and component type, and what sandflow knows about each before it runs.

Each entry names the function that runs the job by module (imported only then: the registry imports no hook
module, so planning imports only the requirement checks its jobs call, and no job's libraries), what the hook writes and
reads, the libraries that enter its key, and its family: what it runs (CPU data work, GPU training,
CPU evaluation, a third-party tool...), which run/resources.py turns into default resources, a conda
env and a container image. A component has its own family where it runs something else than its
hook's default (docs/resources.md lists them all). Adding a hook: docs/design.md.

A hook or component's ``requires`` check says what a job needs that this machine lacks (a package,
a model, a tool tree, a GPU): such jobs plan normally (``snakemake -n`` shows them), and a real run
stops before any job, one line per problem.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sandflow.hooks.base import Component, Hook, HookStage, JobRun, RequirementCheck
from sandflow.hooks.user_hooks import user_hook

DATA_JUICER = ("py-data-juicer",)
HF_TRAINING = ("torch", "transformers", "peft", "tokenizers")
EASYANIMATE = "sandflow.hooks.third_party.easyanimate"
INTERNVL = "sandflow.hooks.third_party.internvl"


def _lazy(module: str, function: str) -> Callable[[JobRun], Any]:
    """Import the hook's module only when the job runs: planning (Snakefile parsing, a no-op `sandflow run`)
    imports no hook module and none of their libraries."""

    def run(job: JobRun) -> Any:
        return getattr(importlib.import_module(module), function)(job)

    # As if defined there: the job key hashes the source of run.__module__ (hooks/source_digest.py).
    run.__module__, run.__qualname__ = module, function
    return run


def _lazy_check(module: str, function: str, *factory_args: str) -> RequirementCheck:
    """A requirement check in a hook's module, imported on its first call (by a job that selects it). With
    ``factory_args`` the function makes the check (one per script or hook name)."""
    found: list[RequirementCheck] = []

    def requires(dj_configs: Any, extra_configs: Any) -> list[str]:
        if not found:
            named = getattr(importlib.import_module(module), function)
            found.append(named(*factory_args) if factory_args else named)
        return found[0](dj_configs, extra_configs)

    return requires


def _modelscope(function: str, hook: str, family: str) -> Component:
    """ModelScope's trainer or pipeline (src/sandflow/hooks/modelscope.py); paths in its configs are its own."""
    return Component(
        _lazy("sandflow.hooks.modelscope", function),
        requires=_lazy_check("sandflow.hooks.modelscope", "requirements_for", hook),
        follows_previous=True,
        family=family,
    )


def _third_party(tool: str, function: str, requires: RequirementCheck, follows_previous: bool = True) -> Component:
    """A third-party tool run in its own env: src/sandflow/hooks/third_party/<tool>.py, envs/<tool>.yaml."""
    run = _lazy(f"sandflow.hooks.third_party.{tool}", function)
    return Component(run, requires=requires, follows_previous=follows_previous, family=tool)


def _dj_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    from sandflow.hooks import dj_requirements  # light: it locates Data-Juicer's ops without importing them

    return dj_requirements.missing_requirements(dj_configs if isinstance(dj_configs, dict) else None)


def _data_juicer_hook(name: str, function: str, **settings: Any) -> Hook:
    """A hook that runs Data-Juicer (src/sandflow/hooks/data_juicer.py)."""
    return Hook(name, _lazy("sandflow.hooks.data_juicer", function), libraries=DATA_JUICER, **settings)


# A hook that reads dj_configs.dataset_path and runs the recipe's ops (which may need extras).
READS_DATASET: dict[str, Any] = {"required_paths": ("dj_configs.dataset_path",), "requires": _dj_requirements}


def _pool_component(kind: str) -> Component:
    module = "pool_construction" if kind == "data_pool_construction" else "data_pools"
    return Component(_lazy(f"sandflow.hooks.{module}", kind))


def _model_hook(name: str, function: str, tool: dict[str, Component], **settings: Any) -> Hook:
    """A hook whose components are one third-party tool and the LLM executors (huggingface, vllm, api)
    running llm_infer.<function>: a local model on a GPU, or a remote model's HTTP API from a CPU job."""
    run = _lazy("sandflow.hooks.llm.infer", function)
    components = {
        **tool,
        "huggingface": Component(run, family="inference"),
        "vllm": Component(run, requires=_lazy_check("sandflow.hooks.llm.infer", "vllm_requirements"), family="vllm"),
        "api": Component(run, requires=_lazy_check("sandflow.hooks.llm.infer", "api_requirements"), family="api"),
    }
    return Hook(name, None, n_outputs=None, family="inference", components=components, **settings)


POOL_TYPES = (
    "data_pool_construction",
    "data_pool_combination",
    "data_pool_duplication",
    "data_pool_downsampling",
    "data_pool_ranking",
    "data_pool_merging",
    "data_pool_cartesian_join",
)

HOOKS: dict[str, Hook] = {
    hook.name: hook
    for hook in (
        _data_juicer_hook(
            "ProbeViaAnalyzerHook", "probe_via_analyzer", rule="probe_via_analyzer", stage="probe", **READS_DATASET
        ),
        _model_hook(
            "ProbeViaModelInferHook",
            "probe_via_model_infer",
            {"modelscope": _modelscope("probe_modelscope", "ProbeViaModelInferHook", "inference")},
            rule="probe_via_model_infer",
            stage="probe",
        ),
        Hook(
            "GeneralProbeHook",
            None,
            n_outputs=None,
            components={"data_pool_ranking": _pool_component("data_pool_ranking")},
            rule="general_probe",
            stage="probe",
        ),
        _data_juicer_hook(
            "RefineRecipeViaKSigmaHook",
            "refine_recipe_via_k_sigma",
            writes=("extra_configs.path_k_sigma_recipe",),
            required_paths=("extra_configs.path_k_sigma_recipe",),  # where the refined recipe goes
            reads_same_meta_name_analysis=True,
            rule="refine_recipe_via_k_sigma",
            stage="refine",
        ),
        Hook(
            "RefineRecipeViaModelFeedbackHook",
            _lazy("sandflow.hooks.model_feedback", "refine_recipe_via_model_feedback"),
            writes=("extra_configs.path_model_feedback_recipe",),
            # where the refined recipe goes, and the best pools it reads (usually a ref to the ranking)
            required_paths=("extra_configs.path_model_feedback_recipe", "extra_configs.dataset_path"),
            rule="refine_recipe_via_model_feedback",
            stage="refine",
        ),
        _data_juicer_hook("ProcessDataHook", "process_data", rule="process_data", stage="execute", **READS_DATASET),
        # Ranking is listed under both hooks: DESIGN.md names it a pool operation, upstream's guide a probe.
        Hook(
            "DataPoolManipulationHook",
            None,
            n_outputs=None,
            components={t: _pool_component(t) for t in POOL_TYPES},
            rule="data_pool_manipulation",
            stage="execute",
        ),
        Hook(
            "GeneralDataExecutorHook",
            None,
            n_outputs=None,
            components={
                t: Component(_lazy("sandflow.hooks.format_conversion", t))
                for t in (
                    "coco_caption_to_dj_conversion",
                    "coco_caption_meta_generation",
                    "dj_to_easyanimate_video_dataset_conversion",
                )
            },
            rule="general_data_executor",
            stage="execute",
        ),
        Hook(
            "TrainModelHook",
            None,
            n_outputs=None,
            libraries=HF_TRAINING,
            family="training",
            writes=("extra_configs.export_path", "extra_configs.work_dir"),
            components={
                "huggingface": Component(
                    _lazy("sandflow.hooks.hf.train", "train_huggingface"),
                    requires=_lazy_check("sandflow.hooks.hf.train", "huggingface_train_requirements"),
                ),
                "modelscope": _modelscope("train_modelscope", "TrainModelHook", "training"),
                "easyanimate": _third_party(
                    "easyanimate",
                    "easyanimate_train",
                    _lazy_check(EASYANIMATE, "easyanimate_requirements", "train_lora.sh"),
                ),
                "trinity-rft": _third_party(
                    "trinity",
                    "trinity_rft_train",
                    _lazy_check("sandflow.hooks.third_party.trinity", "trinity_requirements"),
                ),
                "internvl_coco_caption": _third_party(
                    "internvl", "internvl_coco_caption_train", _lazy_check(INTERNVL, "internvl_train_requirements")
                ),
            },
            rule="train_model",
            stage="execute",
        ),
        _model_hook(
            "InferModelHook",
            "infer_model",
            {
                "easyanimate": _third_party(
                    "easyanimate",
                    "easyanimate_infer",
                    _lazy_check(EASYANIMATE, "easyanimate_requirements", "infer_lora.sh"),
                )
            },
            rule="infer_model",
            stage="execute",
        ),
        Hook(
            "EvaluateDataHook",
            None,
            n_outputs=None,
            components={
                "accuracy": Component(_lazy("sandflow.hooks.data_evaluators", "accuracy_evaluator"), n_outputs=2),
                "mse": Component(_lazy("sandflow.hooks.data_evaluators", "mse_evaluator"), n_outputs=2),
                "coco_caption": Component(
                    _lazy("sandflow.hooks.caption_metrics", "coco_caption_evaluator"), n_outputs=2, family="evaluation"
                ),
                "dj_text_quality_classifier": Component(
                    _lazy("sandflow.hooks.data_evaluators", "text_quality_evaluator"),
                    requires=_lazy_check("sandflow.hooks.data_evaluators", "quality_classifier_requirements"),
                ),
                "vbench_video_evaluator": _third_party(
                    "vbench",
                    "vbench_video_evaluator",
                    _lazy_check("sandflow.hooks.third_party.vbench", "vbench_requirements"),
                ),
                "video_inception_evaluator": _third_party(
                    "inception",
                    "video_inception_evaluator",
                    _lazy_check("sandflow.hooks.third_party.inception", "inception_requirements"),
                    follows_previous=False,
                ),
            },
            rule="evaluate_data",
            stage="evaluate",
        ),
        Hook(
            "EvaluateModelHook",
            None,
            n_outputs=None,
            libraries=HF_TRAINING,
            family="evaluation",
            components={
                "perplexity": Component(_lazy("sandflow.hooks.hf.perplexity", "evaluate_perplexity")),
                "internvl_coco_caption": _third_party(
                    "internvl", "internvl_coco_caption_eval", _lazy_check(INTERNVL, "internvl_requirements")
                ),
            },
            rule="evaluate_model",
            stage="evaluate",
        ),
    )
}


def hooks_of_stage(stage: HookStage) -> list[Hook]:
    """The hooks whose rules rules/<stage>.smk generates, in registry order."""
    return [hook for hook in HOOKS.values() if hook.stage == stage]


def hook_named(name: str) -> Hook | None:
    """A hook of the registry, or a user's own hook named <module>.<Class> (hooks/user_hooks.py)."""
    return HOOKS.get(name) or user_hook(name)


def component_of(hook: Hook, extra_configs: Any) -> tuple[str | None, Component | None]:
    """The component a job selects through extra_configs.type (None when the hook takes none)."""
    if hook.components is None or not isinstance(extra_configs, dict):
        return None, None
    kind = extra_configs.get("type")
    return kind, hook.components.get(kind) if isinstance(kind, str) else None


def missing_requirements(hook: Hook, dj_configs: Any, extra_configs: Any) -> list[str]:
    """What this machine lacks for a job: the hook's own check, then its component's."""
    _, component = component_of(hook, extra_configs)
    missing = hook.requires(dj_configs, extra_configs)
    if component is not None:
        missing += component.requires(dj_configs, extra_configs)
    return missing
