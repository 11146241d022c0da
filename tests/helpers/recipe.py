"""A Data-Juicer recipe for tests that plan configs."""

# A small Data-Juicer recipe reading plan_dir's one row: for tests that plan configs (nothing runs).
RECIPE = {
    "project_name": "t",
    "dataset_path": "data/in.jsonl",
    "export_path": "./out/processed.jsonl",
    "np": 1,
    "process": [{"text_length_filter": {"min_len": 5, "max_len": 500}}],
}
