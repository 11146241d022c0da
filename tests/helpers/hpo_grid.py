"""An hpo_config grid of N trials of merge -> downsample (the searched value) -> mse evaluation, on cheap pool hooks.

The merge is the same job in every trial, so N trials plan 3N jobs of which 2N+1 are distinct. The inputs it
reads, a.jsonl and b.jsonl (rows with "grade" and "truth"), are the caller's to write beside the config.
benchmarks/plan_trials.py measures planning it at scale; tests/unit/run/test_per_job.py plans it small.
"""

from __future__ import annotations


def grid_config(trials: int) -> dict:
    pools = {"type": "data_pool_downsampling", "shuffle_seed": 1}
    return {
        "work_dir": "./out",
        "hpo_config": {
            "method": "grid",
            "metric": {"name": "search.evaluate.min_mse", "goal": "minimize"},
            "parameters": {"search.sample.extra_configs.target_num_samples": {"values": list(range(1, trials + 1))}},
        },
        "pipelines": [
            {
                "search": {
                    "execution_job_configs": [
                        {
                            "hook": "DataPoolManipulationHook",
                            "meta_name": "merge",
                            "output": "merged",
                            "extra_configs": {
                                "type": "data_pool_merging",
                                "dataset_path": ["a.jsonl", "b.jsonl"],
                                "export_path": "./out/merged/all.jsonl",
                            },
                        },
                        {
                            "hook": "DataPoolManipulationHook",
                            "meta_name": "sample",
                            "output": "sample",
                            "input": {"extra_configs.dataset_path": "-1.merged"},
                            "extra_configs": {
                                **pools,
                                "dataset_path": "<merged>",
                                "target_num_samples": 1,
                                "export_path": "./out/s/",
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
            }
        ],
    }
