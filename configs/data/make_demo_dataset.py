#!/usr/bin/env python3
"""Generate the sandflow demo dataset (``configs/data/demo/demo-dataset.jsonl``).

Standard library only, seeded and deterministic: the same ``--seed`` and
``--num-samples`` always give a byte-identical file.

The dataset is ~3,000 samples of clean, varied English prose built from word
lists and sentence templates, plus ~1.5 % PLANTED noisy samples::

    {"text": "...", "meta": {"id": "demo-00001", "planted": null}}
    {"text": "...", "meta": {"id": "demo-00002", "planted": "symbol_junk"}}

The demo pipeline is: probe (analyse the data) -> k-sigma refinement of
``configs/demo/process.yaml`` -> process with the refined recipe -> analyse the
processed data.  The dataset is built so that this is exact: with the
Data-Juicer stats of the recipe's filters (``STAT_KEYS``) and thresholds
``mean ± 3·std`` (``std`` as ``pandas.DataFrame.describe`` computes it: the
sample standard deviation over the whole dataset, planted samples included),

* every clean sample lies inside ``[mean - 3·std, mean + 3·std]`` on every stat;
* every planted sample lies outside on at least one stat;
* no sample lies within ~1 % of a threshold (integer thresholds are rounded
  outward by the refinement, so those keep a margin of at least 2 units),

so processing with the refined recipe drops exactly the planted samples.  The
script checks this itself (``check_dataset``) before writing, using a
standard-library re-implementation of Data-Juicer 1.6.1's stats
(``compute_stats``); ``tests/unit/hooks/test_demo_dataset.py`` checks that it agrees with
Data-Juicer's own operators.

Planted kinds (what they are built to violate):

* ``long_rambling``   -- very long run-on prose: text_len, num_words too high
* ``symbol_junk``     -- symbol-heavy junk: alnum_ratio too low,
  special_char_ratio too high
* ``repeated_phrase`` -- one spam phrase over and over: char_rep_ratio too high
* ``token_dump``      -- space-less base64/hex dumps: alnum_ratio too high,
  special_char_ratio too low
"""

from __future__ import annotations

import argparse
import json
import math
import random
import string
import sys
from pathlib import Path

DEFAULT_SEED = 2024
DEFAULT_NUM_SAMPLES = 3000
DEFAULT_OUT = Path(__file__).resolve().parent / "demo" / "demo-dataset.jsonl"
PLANTED_FRACTION = 0.015
K_SIGMA = 3.0
# relative distance every value keeps from every threshold (fraction of |threshold|)
REL_MARGIN = 0.01
# absolute distance for integer stats (the refinement rounds their thresholds outward)
INT_MARGIN = 2
MAX_SIZE_BYTES = 5 * 1024 * 1024

PLANTED_KINDS = ("long_rambling", "symbol_junk", "repeated_phrase", "token_dump")

# Data-Juicer stats key -> (filter op, is integer)
STAT_KEYS = {
    "text_len": ("text_length_filter", True),
    "alnum_ratio": ("alphanumeric_filter", False),
    "special_char_ratio": ("special_characters_filter", False),
    "char_rep_ratio": ("character_repetition_filter", False),
    "num_words": ("words_num_filter", True),
}
CHAR_REP_LEN = 10

# ---------------------------------------------------------------------------
# Data-Juicer 1.6.1 stats, re-implemented for ASCII text (standard library).
# Data-Juicer's SPECIAL_CHARACTERS = punctuation + digits + whitespace + a set
# of non-ASCII symbols and emoji; on ASCII text only the first three matter.
# ---------------------------------------------------------------------------
_SPECIAL_ASCII = frozenset(string.punctuation + string.digits + string.whitespace)


def _strip_special(word: str) -> str:
    beg, end = 0, len(word)
    while beg < end and word[beg] in _SPECIAL_ASCII:
        beg += 1
    while end > beg and word[end - 1] in _SPECIAL_ASCII:
        end -= 1
    return word[beg:end]


def text_len(text: str) -> int:
    """text_length_filter: number of characters."""
    return len(text)


def alnum_ratio(text: str) -> float:
    """alphanumeric_filter (tokenization false): alnum chars / chars."""
    return sum(1 for c in text if c.isalnum()) / len(text) if text else 0.0


def special_char_ratio(text: str) -> float:
    """special_characters_filter: special chars / chars."""
    return len([c for c in text if c in _SPECIAL_ASCII]) / len(text) if text else 0.0


def char_rep_ratio(text: str, rep_len: int = CHAR_REP_LEN) -> float:
    """character_repetition_filter: share of the sqrt(#distinct) most frequent
    repeated char n-grams among all char n-grams."""
    freq: dict[str, int] = {}
    for i in range(len(text) - rep_len + 1):
        gram = text[i : i + rep_len]
        freq[gram] = freq.get(gram, 0) + 1
    if not freq:
        return 0.0
    counts = sorted(freq.values(), reverse=True)
    num_rep = min(int(math.sqrt(len(counts))), len(counts) - counts.count(1))
    total = sum(counts)
    return sum(counts[:num_rep]) / total if total else 0.0


def num_words(text: str) -> int:
    """words_num_filter (tokenization false): split on space / newline / tab,
    strip special characters from both ends, drop empty words."""
    words = [w for w in text.replace("\t", " ").replace("\n", " ").split(" ") if w]
    return len([w for w in (_strip_special(w) for w in words) if w])


STAT_FUNCS = {
    "text_len": text_len,
    "alnum_ratio": alnum_ratio,
    "special_char_ratio": special_char_ratio,
    "char_rep_ratio": char_rep_ratio,
    "num_words": num_words,
}


def compute_stats(text: str) -> dict:
    if not text.isascii():
        raise ValueError("the stdlib stats re-implementation only covers ASCII text")
    return {key: func(text) for key, func in STAT_FUNCS.items()}


def describe(values: list[float]) -> tuple[float, float]:
    """mean and sample std (ddof=1), as pandas' describe() reports them."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def thresholds(stats: list[dict], k: float = K_SIGMA) -> dict:
    """{stat: {"mean", "std", "min", "max", "lower", "upper"}} over all samples."""
    table = {}
    for key in STAT_KEYS:
        values = [s[key] for s in stats]
        mean, std = describe(values)
        table[key] = {
            "mean": mean,
            "std": std,
            "min": min(values),
            "max": max(values),
            "lower": mean - k * std,
            "upper": mean + k * std,
        }
    return table


def margin(key: str, threshold: float) -> float:
    m = REL_MARGIN * abs(threshold)
    return max(m, INT_MARGIN) if STAT_KEYS[key][1] else m


def classify(stat: dict, table: dict) -> tuple[list[str], list[str]]:
    """(stats the sample is clearly outside, stats where it is too close to a threshold)."""
    outside, close = [], []
    for key, row in table.items():
        value = stat[key]
        for thr in (row["lower"], row["upper"]):
            if abs(value - thr) < margin(key, thr):
                close.append(key)
        if value < row["lower"] or value > row["upper"]:
            if key not in close:
                outside.append(key)
    return outside, close


def check_dataset(records: list[dict], stats: list[dict] | None = None) -> list[str]:
    """Problems with the planted/clean split (empty list: all good)."""
    if stats is None:
        stats = [compute_stats(r["text"]) for r in records]
    table = thresholds(stats)
    problems = []
    for rec, stat in zip(records, stats):
        outside, close = classify(stat, table)
        rid, planted = rec["meta"]["id"], rec["meta"]["planted"]
        if close:
            problems.append(f"{rid}: within the margin of a threshold on {close}")
        if planted is None and outside:
            problems.append(f"{rid}: clean but outside mean±{K_SIGMA:g}σ on {outside}")
        if planted is not None and not outside:
            problems.append(f"{rid}: planted ({planted}) but inside mean±{K_SIGMA:g}σ on every stat")
    return problems


# ---------------------------------------------------------------------------
# Clean prose
# ---------------------------------------------------------------------------
NAMES = (
    "Ada",
    "Ben",
    "Clara",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Nora",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Samuel",
    "Tessa",
    "Umar",
    "Vera",
    "Walter",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Marta",
    "Oliver",
    "Leila",
    "Tomas",
)
CITIES = (
    "Lisbon",
    "Denver",
    "Osaka",
    "Nairobi",
    "Glasgow",
    "Montreal",
    "Hanoi",
    "Valencia",
    "Bergen",
    "Adelaide",
    "Porto",
    "Kraków",
    "Austin",
    "Cork",
    "Seville",
    "Tallinn",
)
CITIES = tuple(c for c in CITIES if c.isascii())
GROUPS = (
    "engineers",
    "students",
    "farmers",
    "volunteers",
    "nurses",
    "musicians",
    "researchers",
    "neighbours",
    "children",
    "visitors",
    "teachers",
    "fishermen",
    "librarians",
    "cyclists",
    "bakers",
    "gardeners",
    "editors",
    "pilots",
    "miners",
    "tourists",
)
NOUNS = (
    "garden",
    "river",
    "bridge",
    "library",
    "market",
    "village",
    "teacher",
    "engine",
    "storm",
    "harvest",
    "lantern",
    "painting",
    "report",
    "kitchen",
    "orchard",
    "meeting",
    "journey",
    "museum",
    "festival",
    "bicycle",
    "window",
    "forest",
    "harbour",
    "experiment",
    "letter",
    "recipe",
    "workshop",
    "railway",
    "mountain",
    "concert",
    "notebook",
    "theory",
    "ferry",
    "clock",
    "committee",
    "valley",
    "street",
    "camera",
    "project",
    "bakery",
    "telescope",
    "classroom",
    "island",
    "factory",
    "newspaper",
    "map",
    "chapel",
    "meadow",
    "tunnel",
    "hospital",
    "stadium",
    "novel",
    "survey",
    "tower",
    "canal",
    "fountain",
    "airport",
)
ADJECTIVES = (
    "quiet",
    "bright",
    "ancient",
    "crowded",
    "narrow",
    "gentle",
    "busy",
    "careful",
    "tiny",
    "enormous",
    "dusty",
    "modern",
    "curious",
    "patient",
    "cheerful",
    "heavy",
    "fragile",
    "silent",
    "colourful",
    "remote",
    "famous",
    "simple",
    "strange",
    "warm",
    "cold",
    "local",
    "rusty",
    "golden",
    "wooden",
    "sudden",
    "steady",
    "humble",
    "clever",
    "noisy",
    "familiar",
    "elegant",
    "broken",
    "empty",
    "green",
    "tall",
    "distant",
    "useful",
    "rare",
    "small",
)
VERBS_T = (  # past tense, transitive
    "repaired",
    "painted",
    "visited",
    "described",
    "studied",
    "measured",
    "cleaned",
    "opened",
    "photographed",
    "explored",
    "built",
    "found",
    "moved",
    "checked",
    "carried",
    "designed",
    "noticed",
    "watched",
    "protected",
    "sold",
    "borrowed",
    "improved",
    "mapped",
    "celebrated",
    "organised",
    "replaced",
    "discovered",
    "admired",
    "tested",
    "closed",
)
VERBS_I = (  # past tense, intransitive
    "arrived",
    "waited",
    "laughed",
    "travelled",
    "disappeared",
    "worked",
    "rested",
    "returned",
    "grew",
    "changed",
    "shone",
    "trembled",
    "wandered",
    "sang",
    "recovered",
    "hesitated",
    "collapsed",
    "flourished",
    "vanished",
    "improved",
)
VERBS_BASE = (
    "close",
    "change",
    "move",
    "grow",
    "fail",
    "open",
    "survive",
    "return",
    "shrink",
    "vanish",
    "shine",
    "rest",
    "travel",
    "arrive",
    "improve",
    "break",
)
ADVERBS = (
    "slowly",
    "quickly",
    "quietly",
    "carefully",
    "suddenly",
    "happily",
    "gradually",
    "rarely",
    "easily",
    "patiently",
    "eagerly",
    "finally",
    "barely",
    "gently",
    "openly",
    "briefly",
)
TIMES = (
    "last spring",
    "every morning",
    "after the storm",
    "before dawn",
    "on Sunday",
    "during the winter",
    "in the evening",
    "at noon",
    "last year",
    "the next day",
    "a week later",
    "by midnight",
    "in early autumn",
    "that summer",
    "on a rainy Tuesday",
)
PLACES = (
    "near the old bridge",
    "behind the station",
    "along the coast",
    "in the town square",
    "at the edge of the forest",
    "on the top floor",
    "beside the canal",
    "across the valley",
    "under the trees",
    "inside the museum",
    "by the harbour",
    "at the market",
    "next to the school",
    "on the hill",
    "in the back room",
)
TOPICS = (
    "local history",
    "bird migration",
    "urban gardens",
    "river pollution",
    "old maps",
    "bread making",
    "solar energy",
    "folk music",
    "public transport",
    "sea levels",
    "mountain weather",
    "ancient pottery",
    "community radio",
    "language learning",
    "wild mushrooms",
    "clock repair",
    "coastal erosion",
    "night skies",
)
DOCS = ("report", "book", "short story", "letter", "article", "guide", "essay", "diary", "poem")
CONNECTORS = (
    "However",
    "Meanwhile",
    "Later",
    "Afterwards",
    "Still",
    "Even so",
    "In the end",
    "At first",
    "Surprisingly",
    "Of course",
    "Nevertheless",
    "Eventually",
)
QUOTES = (
    "We will be back tomorrow",
    "Nobody expected this",
    "It is better than last year",
    "Let us try again",
    "That was the best day of the summer",
    "Keep the door open",
    "The work is almost finished",
    "I have never seen anything like it",
)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _sentence(rng: random.Random) -> str:
    c = rng.choice
    t = rng.randrange(16)
    if t == 0:
        s = f"The {c(ADJECTIVES)} {c(NOUNS)} {c(VERBS_I)} {c(PLACES)}."
    elif t == 1:
        s = f"{c(NAMES)} {c(VERBS_T)} the {c(ADJECTIVES)} {c(NOUNS)} {c(TIMES)}."
    elif t == 2:
        s = f"{_cap(c(TIMES))}, the {c(GROUPS)} {c(VERBS_I)} {c(ADVERBS)}."
    elif t == 3:
        s = f"Most {c(GROUPS)} in {c(CITIES)} were {c(ADJECTIVES)}, but a few were {c(ADJECTIVES)} and {c(ADJECTIVES)}."
    elif t == 4:
        s = f"Why did the {c(NOUNS)} {c(VERBS_BASE)} so {c(ADVERBS)}?"
    elif t == 5:
        s = f"According to {c(NAMES)}, about {rng.randint(3, 97)} percent of the {c(GROUPS)} {c(VERBS_I)} {c(TIMES)}."
    elif t == 6:
        s = f"In {rng.randint(1890, 2023)}, {c(NAMES)} wrote {_a(c(DOCS))} about {c(TOPICS)}."
    elif t == 7:
        s = f"It was {_a(c(ADJECTIVES))} day; nobody expected the {c(NOUNS)} to {c(VERBS_BASE)} so {c(ADVERBS)}."
    elif t == 8:
        s = f"We {c(VERBS_T)} the {c(NOUNS)} and then {c(VERBS_T)} it {c(ADVERBS)}."
    elif t == 9:
        s = f'"{c(QUOTES)}," said {c(NAMES)} {c(ADVERBS)}.'
    elif t == 10:
        s = (
            f"{c(CONNECTORS)}, the {c(GROUPS)} from {c(CITIES)} {c(VERBS_T)} "
            f"{_a(c(ADJECTIVES))} {c(NOUNS)} {c(PLACES)}."
        )
    elif t == 11:
        s = f"There is {_a(c(ADJECTIVES))} {c(NOUNS)} {c(PLACES)}, and it is {c(ADJECTIVES)}."
    elif t == 12:
        s = f"{c(NAMES)} and {c(NAMES)} spent {rng.randint(2, 12)} hours talking about {c(TOPICS)}."
    elif t == 13:
        s = f"The {c(NOUNS)} looked {c(ADJECTIVES)}, so the {c(GROUPS)} {c(VERBS_I)}."
    elif t == 14:
        s = f"{_cap(_a(c(ADJECTIVES)))} {c(NOUNS)} and {_a(c(ADJECTIVES))} {c(NOUNS)} {c(VERBS_I)} {c(TIMES)}."
    else:
        s = f"{c(CONNECTORS)}, {c(NAMES)} {c(VERBS_I)} {c(ADVERBS)} {c(PLACES)}."
    return s


def clean_text(rng: random.Random) -> str:
    n = max(1, round(rng.triangular(1, 11, 4)))
    sentences = [_sentence(rng) for _ in range(n)]
    if n >= 6 and rng.random() < 0.3:  # occasionally two paragraphs
        cut = rng.randint(2, n - 2)
        return " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


# ---------------------------------------------------------------------------
# Planted noise
# ---------------------------------------------------------------------------
FILLERS = ("and then", "so anyway", "you know", "and also", "and basically", "like I said")
SYMBOL_RUNS = (
    "###",
    "$$",
    "@@@",
    "!!!",
    "%%",
    "^^^",
    "&&",
    "***",
    "~~~",
    "+++",
    "==",
    "<<>>",
    "||",
    "//",
    "\\\\",
    "[[]]",
    "{}",
    "??",
    ";;",
    "::",
    "--",
    "__",
    "..",
)
# Short repeating units: Data-Juicer's char_rep_ratio counts the sqrt(#distinct)
# most frequent 10-grams, so a flood of a unit of period <= 9 after a little
# prose makes nearly every 10-gram one of the few top ones.
FLOOD_UNITS = ("ha", "lol ", "!", "no! ", "wow ", "xD ", "?!", "la ", "buy! ", "ok ", "=)", "...")


def planted_text(kind: str, rng: random.Random) -> str:
    if kind == "long_rambling":
        parts = []
        for _ in range(rng.randint(70, 110)):
            s = _sentence(rng)
            parts.append(s[:-1] + ", " + rng.choice(FILLERS) if rng.random() < 0.5 else s)
        return " ".join(parts)
    if kind == "symbol_junk":
        tokens = []
        for _ in range(rng.randint(40, 110)):
            tokens.append(
                rng.choice(SYMBOL_RUNS) if rng.random() < 0.8 else rng.choice(NOUNS + ADJECTIVES)[: rng.randint(2, 5)]
            )
        return " ".join(tokens)
    if kind == "repeated_phrase":
        unit = rng.choice(FLOOD_UNITS)
        flood = (unit * (rng.randint(250, 600) // len(unit) + 1)).strip()
        return _sentence(rng) + " " + flood
    if kind == "token_dump":
        alphabet = (string.ascii_letters + string.digits) if rng.random() < 0.5 else "0123456789abcdef"
        blob = "".join(rng.choice(alphabet) for _ in range(rng.randint(250, 700)))
        return rng.choice(("token=", "sha:", "data:", "")) + blob
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------
def build(seed: int = DEFAULT_SEED, num_samples: int = DEFAULT_NUM_SAMPLES, info: dict | None = None) -> list[dict]:
    if num_samples < 200:
        raise ValueError("num_samples must be at least 200 for k-sigma statistics to be meaningful")
    rng = random.Random(seed)
    num_planted = max(len(PLANTED_KINDS), round(num_samples * PLANTED_FRACTION))
    planted_at = sorted(rng.sample(range(num_samples), num_planted))
    kind_of = {pos: PLANTED_KINDS[i % len(PLANTED_KINDS)] for i, pos in enumerate(planted_at)}

    records = []
    for i in range(num_samples):
        kind = kind_of.get(i)
        text = planted_text(kind, rng) if kind else clean_text(rng)
        records.append({"text": text, "meta": {"id": f"demo-{i + 1:05d}", "planted": kind}})
    stats = [compute_stats(r["text"]) for r in records]

    # Repair pass (deterministic; normally a no-op): resample any sample that
    # is on the wrong side of, or too close to, a threshold.
    for _ in range(50):
        table = thresholds(stats)
        bad = []
        for i, (rec, stat) in enumerate(zip(records, stats)):
            outside, close = classify(stat, table)
            planted = rec["meta"]["planted"]
            if close or (planted is None and outside) or (planted is not None and not outside):
                bad.append(i)
        if not bad:
            break
        if info is not None:
            info["resampled"] = info.get("resampled", 0) + len(bad)
        for i in bad:
            kind = records[i]["meta"]["planted"]
            records[i]["text"] = planted_text(kind, rng) if kind else clean_text(rng)
            stats[i] = compute_stats(records[i]["text"])
    problems = check_dataset(records, stats)
    if problems:
        raise RuntimeError(f"seed {seed}: could not build a clean split:\n" + "\n".join(problems[:20]))
    return records


def serialise(records: list[dict]) -> bytes:
    lines = [json.dumps(r, ensure_ascii=True, separators=(", ", ": ")) for r in records]
    return ("\n".join(lines) + "\n").encode("ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--num-samples", type=int, default=DEFAULT_NUM_SAMPLES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--summary", action="store_true", help="print the stats table")
    args = parser.parse_args(argv)

    records = build(args.seed, args.num_samples)
    data = serialise(records)
    if len(data) >= MAX_SIZE_BYTES:
        raise RuntimeError(f"dataset is {len(data)} bytes, over the {MAX_SIZE_BYTES} limit")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)

    planted = [r for r in records if r["meta"]["planted"]]
    print(f"wrote {args.out}: {len(records)} samples ({len(planted)} planted), {len(data)} bytes")
    if args.summary:
        stats = [compute_stats(r["text"]) for r in records]
        table = thresholds(stats)
        print(f"{'stat':<20}{'mean':>12}{'std':>12}{'min':>10}{'max':>10}{'lower':>12}{'upper':>12}")
        for key, row in table.items():
            print(
                f"{key:<20}{row['mean']:>12.5g}{row['std']:>12.5g}{row['min']:>10.4g}"
                f"{row['max']:>10.4g}{row['lower']:>12.5g}{row['upper']:>12.5g}"
            )
        by_kind: dict[str, dict[str, int]] = {}
        for rec, stat in zip(records, stats):
            kind = rec["meta"]["planted"]
            if kind:
                outside, _ = classify(stat, table)
                counts = by_kind.setdefault(kind, {"n": 0})
                counts["n"] += 1
                for key in outside:
                    counts[key] = counts.get(key, 0) + 1
        for kind, counts in by_kind.items():
            print(f"{kind}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
