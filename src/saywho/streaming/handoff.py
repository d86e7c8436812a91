"""From a live session to its finished job: which final speaker each live label became.

The offline pipeline re-diarizes the whole recording with its own labels; names given
during the session are carried over by pairing live labels with final ones by the
time they share (the best overall assignment, Hungarian), so each name lands on one
final speaker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from saywho.types import SpeakerTurn


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def map_labels(live: Iterable[SpeakerTurn], final: Iterable[SpeakerTurn]) -> dict[str, str]:
    """live label -> final label, for pairs that share some speech time."""
    from scipy.optimize import linear_sum_assignment

    live, final = list(live), list(final)
    live_labels = sorted({t.speaker for t in live})
    final_labels = sorted({t.speaker for t in final})
    if not live_labels or not final_labels:
        return {}
    shared = np.zeros((len(live_labels), len(final_labels)))  # (live, final) seconds together
    for t in live:
        for u in final:
            shared[live_labels.index(t.speaker), final_labels.index(u.speaker)] += overlap(
                (t.start, t.end), (u.start, u.end))
    rows, cols = linear_sum_assignment(shared, maximize=True)
    return {live_labels[r]: final_labels[c] for r, c in zip(rows, cols, strict=True) if shared[r, c] > 0}


def carried_names(live: Iterable[SpeakerTurn], final: Iterable[SpeakerTurn],
                  names: Mapping[str, str]) -> dict[str, str]:
    """final label -> the name its live speaker was given (``names``: live label -> name).

    Only the named live speakers compete for the final ones: where the live session split
    one voice in two (Ada for a few seconds, then an unnamed label for the rest), the
    unnamed half no longer takes Ada's final speaker and her name with it."""
    named = [t for t in live if names.get(t.speaker)]
    mapping = map_labels(named, final)
    return {mapping[label]: name for label, name in names.items() if label in mapping and name}
