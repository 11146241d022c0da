#!/usr/bin/env python3
"""Generate the data of the model demo (``configs/data/model_demo/``): made-up facts a tiny LM can learn.

Standard library only, seeded: the same ``--seed`` always gives byte-identical files.

Every country of an invented world has an invented capital, stated as
``The capital of <country> is <capital>.``, alone or next to a filler
sentence about the country (weather, food, trade). Files:

* ``train.jsonl`` -- ``{"text", "meta": {"id", "junk"}}``: eight distinct texts per
  country (the fact before or after its filler), plus a few JUNK rows (symbol
  soup, two-word fragments) that the demo's recipe filters out before training
  (``meta.junk`` says which ones, for checking);
* ``heldout.jsonl`` -- ``{"text"}``: new paragraphs of the same world, none
  equal to a training text: the perplexity set;
* ``qa.jsonl`` -- ``{"id", "query", "answer"}``: ``The capital of <country> is``
  -> ``<capital>``, one per country: the model must complete the fact.

The capitals are one capitalised word of letters only, unique, and no capital
is the name or the start of a name of a country, so the first word of a
completion is right only if the model recalls that country's fact.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

DEFAULT_SEED = 7
DEFAULT_OUT = Path(__file__).resolve().parent / "model_demo"
NUM_COUNTRIES = 20
PARAGRAPHS_PER_COUNTRY = 8
HELDOUT_PER_COUNTRY = 2
JUNK_ROWS = 12
# Few fillers: the denser the facts, the fewer steps a tiny model needs to learn them.
FILLERS_PER_PARAGRAPH = (0, 1)

ONSETS = [
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gl",
    "kr",
    "pl",
    "qu",
    "sk",
    "st",
    "tr",
    "vr",
]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "b", "d", "k", "l", "m", "n", "r", "s", "x", "nd", "rk", "lt"]
COUNTRY_SUFFIXES = ["land", "ia", "stan", "mark", "ovia", "heim"]

WEATHER = ["mild", "cold", "wet", "windy", "sunny", "foggy"]
SEASONS = ["spring", "summer", "autumn", "winter"]
FOODS = ["bread", "soup", "cheese", "rice", "fish", "plums", "honey", "beans"]
GOODS = ["wool", "salt", "timber", "glass", "copper", "silk", "paper", "tea"]
FILLERS = [
    "The weather in {country} is {weather} in {season}.",
    "People in {country} like to eat {food}.",
    "{country} sells {good} to its neighbours.",
    "Most towns in {country} have a market for {good}.",
    "In {season} the roads of {country} are quiet.",
    "Children in {country} learn to cook {food} early.",
]
FACT = "The capital of {country} is {capital}."
QUERY = "The capital of {country} is"
JUNK = [
    "@@## $$%% ^^&& **(( ))__ ++== {{}} ||~~",
    "#!/$ %^&* ()-+ =[] {}|; :,.< >?~`",
    "ok fine",
    "yes no",
    "=== *** === *** === ***",
    "<<>> [[]] {{}} (()) <<>>",
]


def word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables))


def make_world(rng: random.Random, size: int) -> list[tuple[str, str]]:
    """(country, capital) pairs; every name unique, no capital a prefix of a country or of another capital."""
    countries: list[str] = []
    capitals: list[str] = []
    while len(countries) < size:
        country = (word(rng, rng.choice([1, 2])) + rng.choice(COUNTRY_SUFFIXES)).capitalize()
        capital = word(rng, 2).capitalize()
        names = countries + capitals
        if country in names or capital in names or capital == country:
            continue
        if any(
            n.startswith(capital) or capital.startswith(n) or n.startswith(country) or country.startswith(n)
            for n in names
        ) or country.startswith(capital):
            continue
        countries.append(country)
        capitals.append(capital)
    return list(zip(countries, capitals))


def paragraph(rng: random.Random, country: str, capital: str) -> str:
    """FILLERS_PER_PARAGRAPH filler sentences with the fact at a random place among them."""
    fillers = rng.sample(FILLERS, rng.choice(FILLERS_PER_PARAGRAPH))
    sentences = [
        f.format(
            country=country,
            weather=rng.choice(WEATHER),
            season=rng.choice(SEASONS),
            food=rng.choice(FOODS),
            good=rng.choice(GOODS),
        )
        for f in fillers
    ]
    sentences.insert(rng.randrange(len(sentences) + 1), FACT.format(country=country, capital=capital))
    return " ".join(sentences)


def new_paragraphs(rng: random.Random, country: str, capital: str, count: int, seen: set[str]) -> list[str]:
    """count paragraphs about one country, none in seen (which they join): no held-out text is a training text."""
    texts: list[str] = []
    while len(texts) < count:
        text = paragraph(rng, country, capital)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def build(seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    world = make_world(rng, NUM_COUNTRIES)
    train: list[dict] = []
    seen: set[str] = set()
    for country, capital in world:
        train += [
            {"text": text, "meta": {"junk": False}}
            for text in new_paragraphs(rng, country, capital, PARAGRAPHS_PER_COUNTRY, seen)
        ]
    rng.shuffle(train)
    for number in range(JUNK_ROWS):
        train.insert(rng.randrange(len(train) + 1), {"text": JUNK[number % len(JUNK)], "meta": {"junk": True}})
    for number, row in enumerate(train, 1):
        row["meta"] = {"id": f"train-{number:04d}", **row["meta"]}

    heldout: list[dict] = []
    for country, capital in world:
        heldout += [{"text": text} for text in new_paragraphs(rng, country, capital, HELDOUT_PER_COUNTRY, seen)]
    rng.shuffle(heldout)
    qa = [
        {"id": f"qa-{number:02d}", "query": QUERY.format(country=country), "answer": capital}
        for number, (country, capital) in enumerate(world, 1)
    ]
    return {"train.jsonl": train, "heldout.jsonl": heldout, "qa.jsonl": qa}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in build(args.seed).items():
        text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"{args.out / name}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
