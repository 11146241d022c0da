#!/usr/bin/env python3
"""Generate the flagship recipe-search data (``configs/data/paper/``).

Standard library only, seeded and deterministic. Two files:

* ``train.jsonl``: the pool the search draws from. Half of it is clean prose
  (the demo dataset's grammar); the other half is noise of four kinds, each
  leaving a mark on a different Data-Juicer stat:

  ``symbol_junk``      runs of symbols            special_char_ratio high, alnum_ratio low
  ``token_dump``       space-less base64/hex      special_char_ratio ~0, alnum_ratio ~1
  ``repeated_phrase``  one phrase flooded         char_rep_ratio high
  ``truncated``        a few words cut mid-way    text_len low

* ``heldout.jsonl``: clean prose only, from another seed: what the models are
  evaluated on.

So the stats really do predict model quality: a pool with more clean prose
trains a model with lower held-out perplexity. A good search should find
that the middle special_char_ratio / alnum_ratio pools and the low
char_rep_ratio pool are the cleanest, that intersecting them is cleaner
still, and that the winner beats a random pool of the same size
(``meta.kind`` records the truth; the flagship test checks the search
against it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

# The demo generator's grammar and noise (same directory; this file runs as a script).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_dataset import _sentence, clean_text, planted_text  # noqa: E402

DEFAULT_SEED = 7
DEFAULT_NUM_TRAIN = 1200
DEFAULT_NUM_HELDOUT = 200
HELDOUT_SEED_OFFSET = 1000
NOISE_FRACTION = 0.5
NOISE_KINDS = ("symbol_junk", "token_dump", "repeated_phrase", "truncated")
DEFAULT_OUT = Path(__file__).resolve().parent / "paper"


def truncated_text(rng: random.Random) -> str:
    """The first few words of a sentence, cut mid-word: what a broken scraper leaves."""
    sentence = _sentence(rng)
    return sentence[: rng.randint(6, 24)].rstrip()


def noisy_text(kind: str, rng: random.Random) -> str:
    return truncated_text(rng) if kind == "truncated" else planted_text(kind, rng)


def build_train(seed: int, num_samples: int) -> list[dict]:
    rng = random.Random(seed)
    num_noisy = round(num_samples * NOISE_FRACTION)
    noisy_at = set(rng.sample(range(num_samples), num_noisy))
    records, noisy_seen = [], 0
    for i in range(num_samples):
        if i in noisy_at:
            kind = NOISE_KINDS[noisy_seen % len(NOISE_KINDS)]
            noisy_seen += 1
            text = noisy_text(kind, rng)
        else:
            kind, text = "clean", clean_text(rng)
        records.append({"text": text, "meta": {"id": f"train-{i + 1:05d}", "kind": kind}})
    return records


def build_heldout(seed: int, num_samples: int) -> list[dict]:
    rng = random.Random(seed + HELDOUT_SEED_OFFSET)
    return [
        {"text": clean_text(rng), "meta": {"id": f"heldout-{i + 1:05d}", "kind": "clean"}} for i in range(num_samples)
    ]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument("--num-heldout", type=int, default=DEFAULT_NUM_HELDOUT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    train = build_train(args.seed, args.num_train)
    write_jsonl(args.out / "train.jsonl", train)
    write_jsonl(args.out / "heldout.jsonl", build_heldout(args.seed, args.num_heldout))
    kinds = {kind: sum(r["meta"]["kind"] == kind for r in train) for kind in ("clean", *NOISE_KINDS)}
    print(f"wrote {args.out}/train.jsonl ({len(train)} samples: {kinds}) and heldout.jsonl ({args.num_heldout})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
