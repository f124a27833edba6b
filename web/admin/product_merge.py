"""Merging a staff save with what changed since the editor opened the form.

Two people editing one product, or an editor and the shop selling it: a save writes only what
its editor changed since opening the form, and refuses a field that someone else changed too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from multidict import MultiDict

from web.admin.product_form import ProductForm

PRODUCT_EDITABLE = ("slug", "name", "description", "category_id", "is_published")
ROW_EDITABLE = ("sku", "name", "price", "currency", "stock")
MOVED_BY_ORDERS = frozenset({"stock"})

# The form carries the stored product as it showed it (`original`, snapshot()). At the save, in
# the transaction that locks the product and its variants, merge() compares three texts per
# field: posted (this editor), original (what they saw) and current (stored now):
#   posted == original             untouched here: the current value stays (someone else's
#                                  change, or a sale's stock decrement, is kept)
#   current == original or posted  changed only here (or both made the same change): posted
#   otherwise                      changed here and there: a conflict, shown beside the field;
#                                  saving again writes the posted value (original moves on)
# Stock is the exception to "the same change": orders move it too, so a stock that orders took
# to the very number the editor typed is not the editor's change made twice (a count of 10
# typed over a shown 4, while a cancellation put 6 back, would silently lose the 6). When the
# stock moved meanwhile and the editor changed it, the editor is asked.


@dataclass(frozen=True)
class Merged:
    values: dict[str, str]
    rows: list[dict[str, str]]
    conflicts: dict[str, str]  # field name -> the message beside it

    def posted(self) -> MultiDict[str]:
        """The merged form as a POST would carry it (what parse() reads)."""
        fields: MultiDict[str] = MultiDict(self.values)
        for row in self.rows:
            prefix = f"v-{row['index']}-"
            fields.extend({prefix + k: v for k, v in row.items() if k != "index"})
        return fields


def snapshot(values: dict[str, str], rows: list[dict[str, str]]) -> str:
    """The stored product's editable field texts (product_values(), variant_rows()) as the
    hidden `original` field."""
    return json.dumps(
        {
            "values": {k: v for k, v in values.items() if _editable(k, PRODUCT_EDITABLE)},
            "rows": {
                row["id"]: {k: v for k, v in row.items() if _editable(k, ROW_EDITABLE)}
                for row in rows
                if row.get("id")
            },
        },
        separators=(",", ":"),
    )


def merge(
    form: ProductForm, current_values: dict[str, str], current_rows: list[dict[str, str]]
) -> Merged | None:
    """The posted form merged with the product as stored now (see above); None when the form
    has no readable `original` (then it is saved as posted: the last save wins)."""
    try:
        original = orjson.loads(form.original)  # bounded depth: a forged one is a ValueError
        original_values, original_rows = original["values"], original["rows"]
        if not isinstance(original_values, dict) or not isinstance(original_rows, dict):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    conflicts: dict[str, str] = {}
    values = dict(form.values)
    _merge_fields(values, original_values, current_values, PRODUCT_EDITABLE, "", conflicts)
    stored = {row["id"]: row for row in current_rows if row.get("id")}
    rows = []
    for posted_row in form.rows:
        row = dict(posted_row)
        variant_id = row.get("id", "")
        was, now = original_rows.get(variant_id), stored.get(variant_id)
        if isinstance(was, dict) and now is not None and row.get("remove") != "on":
            _merge_fields(row, was, now, ROW_EDITABLE, f"v-{row['index']}-", conflicts)
        rows.append(row)
    return Merged(values, rows, conflicts)


def _editable(key: str, names: tuple[str, ...]) -> bool:
    return key in names or key.startswith("attr-")


def _merge_fields(
    posted: dict[str, str],
    original: dict[str, Any],
    current: dict[str, str],
    names: tuple[str, ...],
    prefix: str,
    conflicts: dict[str, str],
) -> None:
    """Merge one product's or one variant row's fields into `posted`, in place."""
    keys = {k for k in (*posted, *original, *current) if _editable(k, names)}
    for key in sorted(keys):
        mine, was, now = posted.get(key, ""), str(original.get(key, "")), current.get(key, "")
        if mine == was:
            posted[key] = now
        elif now != was and (now != mine or key in MOVED_BY_ORDERS):
            conflicts[prefix + key] = _changed_meanwhile(now)


def _changed_meanwhile(now: str) -> str:
    # (A checkbox never gets here: with two states, both sides changing it agree.)
    if now == "":
        return "Someone else cleared this field meanwhile. Save again to keep your value."
    return f"Someone else changed this to “{now}” meanwhile. Save again to keep your value."
