"""Hooks of your own: each is a sandflow.BaseHook subclass whose hook() returns the job's outputs.

The config names one as 'module:Class' (the module path from the directory you run in). Editing this file
reruns the jobs of its hooks, and only those (and what reads their outputs).
"""

import json
import os

from sandflow import BaseHook


def read_rows(path):
    with open(path, encoding="utf-8") as rows:
        return [json.loads(line) for line in rows if line.strip()]


class CountRows(BaseHook):
    """Counts the rows of extra_configs.dataset_path; writes the count to extra_configs.export_path."""

    def hook(self, **kwargs):
        count = len(read_rows(self.extra_cfg.dataset_path))
        self.log.info("%s: %d rows", self.meta_name, count)
        os.makedirs(os.path.dirname(self.extra_cfg.export_path), exist_ok=True)
        with open(self.extra_cfg.export_path, "w", encoding="utf-8") as out:
            json.dump({"rows": count}, out)
        return count


class KeepLongTexts(BaseHook):
    """Keeps the rows whose text has at least extra_configs.min_words words; returns the kept file's path."""

    def hook(self, **kwargs):
        rows = read_rows(self.extra_cfg.dataset_path)
        kept = [row for row in rows if len(row["text"].split()) >= self.extra_cfg.min_words]
        os.makedirs(os.path.dirname(self.extra_cfg.export_path), exist_ok=True)
        with open(self.extra_cfg.export_path, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in kept)
        return self.extra_cfg.export_path


class KeptShare(BaseHook):
    """The share of rows kept: extra_configs.kept / extra_configs.total."""

    def hook(self, **kwargs):
        return round(self.extra_cfg.kept / self.extra_cfg.total, 4)
