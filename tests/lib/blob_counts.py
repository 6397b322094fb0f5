"""What a copy task did with blobs: its per-image ``blobs`` counts added up."""

from __future__ import annotations


def blob_totals(result: dict) -> dict:
    """``copied``, ``skipped`` and ``mounted`` over every entry of a batch result's ``results``."""
    out = {"copied": 0, "skipped": 0, "mounted": 0}
    for entry in result["results"]:
        for key in out:
            out[key] += entry["blobs"][key]
    return out
