"""Write configs/data/hpo/{careful,hasty}.jsonl: graded answers from two annotators.

Each row has a `grade` (the annotator's score) and the `truth`. The careful annotator is off by a
little, the hasty one by a lot, so a sample's mse depends on how many hasty rows it draws: the
search in configs/hpo/ has something to find. Fixed seed: the files are byte-identical every time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "hpo"
ROWS = 200


def write(name: str, noise: float, rng: random.Random) -> None:
    with (OUT / f"{name}.jsonl").open("w") as handle:
        for number in range(ROWS):
            truth = rng.randint(0, 1)
            grade = min(1.0, max(0.0, truth + rng.uniform(-noise, noise)))
            handle.write(
                json.dumps({"text": f"{name} answer {number}", "grade": round(grade, 3), "truth": truth}) + "\n"
            )


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = random.Random(11)
    write("careful", 0.2, rng)
    write("hasty", 0.9, rng)


if __name__ == "__main__":
    main()
