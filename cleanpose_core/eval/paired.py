"""Paired comparison of two pose models on the same objects: does model A beat model B beyond chance?

The NOCS metrics are APs over a whole split, one number per training run, so with three seeds a paired
t-test over runs has two degrees of freedom and little power. With ground-truth masks both models predict
every ground-truth object of the same images, so each object is a paired trial: success at (degrees, cm) for A
and for B. McNemar's exact test on the discordant pairs (A right and B wrong, or the reverse) uses every
object of every run; the per-run t-test is reported beside it.

Per-object success here is the pose error of the object's own prediction (the same-class prediction nearest
to it in translation) under the official error arithmetic, symmetric categories scored by their y axes and
mugs whose handle is hidden as symmetric, as in the NOCS protocol. It is not AP (no score ranking, no IoU
gate), which is why the tables show AP and the tests use these trials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from cleanpose_core.eval.metrics import pose_error_single
from cleanpose_core.eval.protocol import NOCS, Protocol
from cleanpose_core.eval.results import ImageResult

__all__ = ["PairedTest", "object_successes", "mcnemar", "seed_ttest"]


def object_successes(results: Sequence[ImageResult], degrees: float, cm: float,
                     protocol: Protocol = NOCS) -> dict[tuple[str, int], bool]:
    """{(image, ground-truth index): pose within `degrees` and `cm`} for every ground-truth object.

    An object without a same-class prediction counts as a failure. Images are keyed by `image_path` (the
    result file's name, without its folder, when absent), so two models' results on the same split share keys.
    """
    out: dict[tuple[str, int], bool] = {}
    names = np.asarray(("BG",) + tuple(protocol.categories))
    for r in results:
        image = r.image_path or os.path.basename(r.source)
        symmetric = protocol.rotation_symmetric_objects(names[r.gt_class_ids], r.gt_handle_visibility)
        for g, cls in enumerate(r.gt_class_ids):
            candidates = np.flatnonzero(r.pred_class_ids == cls)
            ok = False
            if candidates.size:
                shift = np.linalg.norm(r.pred_RTs[candidates, :3, 3] - r.gt_RTs[g, :3, 3], axis=-1)
                p = int(candidates[np.argmin(shift)])
                deg, dist = pose_error_single(r.pred_RTs[p], r.gt_RTs[g], bool(symmetric[g]))
                ok = bool(deg <= degrees and dist <= cm)  # NaN (degenerate symmetric axis) fails
            out[(image, g)] = ok
    return out


@dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test of A vs B over paired objects."""

    objects: int  # objects both models were scored on
    a_only: int  # A succeeds, B fails
    b_only: int  # B succeeds, A fails
    p_value: float  # two-sided exact binomial test on the discordant pairs (1.0 when there are none)

    @property
    def difference(self) -> float:
        """Success rate of A minus B, in percentage points."""
        return 100.0 * (self.a_only - self.b_only) / self.objects if self.objects else 0.0


def mcnemar(a: dict, b: dict) -> PairedTest:
    """Paired test over the keys both outcome maps share (pool several runs by prefixing their keys)."""
    keys = a.keys() & b.keys()
    a_only = sum(1 for k in keys if a[k] and not b[k])
    b_only = sum(1 for k in keys if b[k] and not a[k])
    n = a_only + b_only
    p = stats.binomtest(a_only, n, 0.5).pvalue if n else 1.0
    return PairedTest(objects=len(keys), a_only=a_only, b_only=b_only, p_value=float(p))


def seed_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(mean difference A - B, two-sided p) of a paired t-test over runs paired by seed; p is NaN with fewer
    than two pairs or identical differences."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired runs differ in number: {a.size} vs {b.size}")
    diff = float(np.mean(a - b)) if a.size else float("nan")
    if a.size < 2 or np.allclose(a - b, (a - b)[0]):
        return diff, float("nan")
    return diff, float(stats.ttest_rel(a, b).pvalue)
