"""A pipeline of merge -> downsample -> mse evaluation on cheap pool hooks, and an hpo_config grid of N trials of it.

In the grid the merge is the same job in every trial, so N trials plan 3N jobs of which 2N+1 are distinct. The inputs
the merge reads, a.jsonl and b.jsonl (rows with "grade" and "truth"), are the caller's to write beside the config.
benchmarks/plan_trials.py measures planning the grid at scale; tests/unit/run/test_per_job.py plans it small and
tests/workflow/test_source_keys.py runs the pipeline alone.
"""

from __future__ import annotations


def merge_sample_evaluate(merged_export: str, sample_export: str, target: int, **sample_settings: object) -> dict:
    """One pipeline's job lists: merge a.jsonl and b.jsonl, downsample to target rows, mse of "grade" to "truth"."""
    return {
        "execution_job_configs": [
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "merge",
                "output": "merged",
                "extra_configs": {
                    "type": "data_pool_merging",
                    "dataset_path": ["a.jsonl", "b.jsonl"],
                    "export_path": merged_export,
                },
            },
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "sample",
                "output": "sample",
                "input": {"extra_configs.dataset_path": "-1.merged"},
                "extra_configs": {
                    "type": "data_pool_downsampling",
                    **sample_settings,
                    "dataset_path": "<merged>",
                    "target_num_samples": target,
                    "export_path": sample_export,
                },
            },
        ],
        "evaluation_job_configs": [
            {
                "hook": "EvaluateDataHook",
                "meta_name": "evaluate",
                "output": ["results", "min_mse"],
                "input": {"extra_configs.predicted_dataset_path": "-1.sample"},
                "extra_configs": {
                    "type": "mse",
                    "predicted_dataset_path": "<sample>",
                    "predicted_value_key": "grade",
                    "ground_truth_value_key": "truth",
                },
            },
        ],
    }


def grid_config(trials: int) -> dict:
    return {
        "work_dir": "./out",
        "hpo_config": {
            "method": "grid",
            "metric": {"name": "search.evaluate.min_mse", "goal": "minimize"},
            "parameters": {"search.sample.extra_configs.target_num_samples": {"values": list(range(1, trials + 1))}},
        },
        "pipelines": [{"search": merge_sample_evaluate("./out/merged/all.jsonl", "./out/s/", 1, shuffle_seed=1)}],
    }
