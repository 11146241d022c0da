"""The values of a covered filter's stats column (hooks/dj_covered_run.py) as Data-Juicer's own map writes them:
each row's stats dict encoded by the column's ``Json`` feature (Hugging Face datasets' ujson, 10 decimals), and
what the filter pass reads back, that text decoded.

Data-Juicer's map decodes every row's stats, adds the op's and encodes the whole dict again, op after op. Here
only the stats an op adds are encoded and decoded, one list per stat name for all rows when they are numbers,
and appended to the text the row's stats had: ujson writes a dict as ``{"name":value,...}`` in insertion order,
each value as it writes that value alone, so the new text is the old one with the new members before its ``}``.

That old text must be what encoding the row's decoded stats gives, as Data-Juicer encodes them again. A decoded
value need not encode back to its text (``5e-324`` is written ``4.940656458e-324`` and read back as ``0.0``):
each op checks that its new values do, and when one does not, the next op encodes every row's stats whole (and
checks that they encode back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datasets.utils.json import ujson_dumps, ujson_loads  # what the Json feature encodes and decodes with

__all__ = ["StatsColumn", "stats_column"]

Stats = dict[str, Any]
# Values ujson writes without a comma: a list of them splits back into each one's text.
SCALARS = frozenset({int, float, bool, type(None)})


@dataclass
class StatsColumn:
    encoded: list[str]  # the column's values
    stats: list[Stats]  # the same decoded: what the op's process reads
    reusable: bool  # each encoded value is what encoding its decoded stats gives again


def stats_column(stats: list[Stats], added: list[Stats], texts: list[str] | None) -> StatsColumn:
    """Each row's stats with this op's ``added`` after them, encoded and decoded.

    ``stats`` are the rows' stats as the column holds them, decoded (updated in place); ``texts`` the column's
    texts of them when they are what encoding ``stats`` gives, None when not known (then each is encoded whole)."""
    reusable = True
    if texts is None:
        texts = [ujson_dumps(row) for row in stats]
        stats = [ujson_loads(text) for text in texts]
        reusable = all(ujson_dumps(row) == text for row, text in zip(stats, texts))
    members = [""] * len(stats)
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, new in enumerate(added):
        if new:
            groups.setdefault(tuple(new), []).append(index)
    for names, rows in groups.items():
        if not add_members(names, rows, stats, added, members):
            reusable = False
    encoded = [text if not member else joined(text, member) for text, member in zip(texts, members)]
    return StatsColumn(encoded, stats, reusable)


def joined(text: str, member: str) -> str:
    """A dict's text with more members after its own."""
    return "{" + member + "}" if text == "{}" else text[:-1] + "," + member + "}"


def add_members(
    names: tuple[str, ...], rows: list[int], stats: list[Stats], added: list[Stats], members: list[str]
) -> bool:
    """Encode and decode these rows' added stats (each with these names, in this order): each row's members text
    into ``members``, the decoded values into its stats. Whether each decoded value encodes back to its text."""
    columns = [[added[row][name] for row in rows] for name in names]
    if all(type(value) in SCALARS for values in columns for value in values):
        texts = [ujson_dumps(values) for values in columns]
        parts = [text[1:-1].split(",") for text in texts]
        if all(len(values) == len(rows) for values in parts):
            labels = [ujson_dumps({name: None})[1:-5] for name in names]  # '"name":'
            labelled = [[label + value for value in values] for label, values in zip(labels, parts)]
            for row, member in zip(rows, map(",".join, zip(*labelled))):
                members[row] = member
            decoded = [ujson_loads(text) for text in texts]
            for name, back in zip(names, decoded):
                for row, value in zip(rows, back):
                    stats[row][name] = value
            return all(ujson_dumps(back) == text for back, text in zip(decoded, texts))
    exact = True
    for row in rows:
        text = ujson_dumps(added[row])
        back = ujson_loads(text)
        members[row] = text[1:-1]
        stats[row].update(back)
        exact = exact and ujson_dumps(back) == text
    return exact
