"""Stand-in for py-data-juicer's tools/mm_eval/inception_metrics/calc_metrics_for_videos.py (tests only).

The real one needs CUDA and detector models. This one takes the same fire-style options, checks the
datasets it is given, and prints and appends its result line as the real one does; the "FVD" is the
difference in video count between the two datasets, so a test can tell what it was given.
"""

import json
import sys

options = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
print(f"Metric: {options['metric']}")


def videos(path):
    with open(path) as lines:
        return sum(len(json.loads(line)["videos"]) for line in lines if line.strip())


fake = videos(options["fake_data_path"])
real = videos(options["real_data_path"])
result = {"results": {options["metric"]: float(abs(fake - real))}, "metric": options["metric"],
          "total_time": 0.5, "total_time_str": "0s", "world_size": 1}
line = json.dumps(dict(result, num_runs=int(options.get("num_runs", 1)), real_data_path=options["real_data_path"],
                       fake_data_path=options["fake_data_path"]))
print(line)
with open(options["result_path"], "at") as results:
    results.write(line + "\n")
