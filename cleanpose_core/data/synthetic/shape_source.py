"""Where a scene's category objects come from: the procedural pools (shapes.py), imported meshes (meshes.py),
or both.

`scene.shape_source` picks it: `procedural` (the default; the draws are exactly those of the procedural
engine, so existing seeds give the same scenes), `meshes` (only the imported meshes of the split; categories
without one are not drawn) or `mixed` (every category; an object of a category that has meshes in the split is
an imported one with probability `scene.mesh_fraction`). Train and test never share an instance: procedural
instances split by index parity, imported ones by their layout or a hash of their name (meshes.assign_splits).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable

import numpy as np

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError
from cleanpose_core.data.synthetic.meshes import (
    MeshEntry,
    check_instance,
    load_instance,
    name_hash,
    read_catalogue,
)
from cleanpose_core.data.synthetic.shapes import ShapeInstance, instance_indices, make_instance, model_id_of

log = logging.getLogger(__name__)

SHAPE_SOURCES = ("procedural", "meshes", "mixed")
_PROCEDURAL_ID = re.compile(rf"({'|'.join(NOCS_CATEGORIES)})_\d{{4}}")


class ShapeSource:
    """The instances of one split and the per-object draw of `compose_scene`."""

    def __init__(self, split: str, scene_cfg) -> None:
        self.cfg = scene_cfg
        self.source = scene_cfg.shape_source
        self.pool = instance_indices(split, scene_cfg.pool_size, scene_cfg.val_pool_size)
        self.meshes: dict[str, list[MeshEntry]] = {}
        if self.source == "procedural":
            self.categories = list(NOCS_CATEGORIES)
            return
        if split == "val":
            raise ConfigError("imported meshes are split into train and test only: render the validation "
                              "split from the procedural shapes (--shape-source procedural)")
        catalogue = read_catalogue(str(scene_cfg.meshes), scene_cfg.shape_seed)
        for c in NOCS_CATEGORIES:
            entries = [e for e in catalogue if e.category == c and e.split == split]
            if entries:
                self.meshes[c] = entries
        if not self.meshes:
            raise ConfigError(
                f"{scene_cfg.meshes}: none of its {len(catalogue)} meshes is in the {split} split"
            )
        if self.source == "mixed":
            clash = [
                e.model_id for es in self.meshes.values() for e in es if _PROCEDURAL_ID.fullmatch(e.model_id)
            ]
            if clash:
                raise ConfigError(
                    f"{scene_cfg.meshes}: model ids {clash[:5]} look like procedural instance ids; "
                    "rename the files or give them an `id` in meshes.yaml"
                )
            self.categories = list(NOCS_CATEGORIES)
        else:
            self.categories = [c for c in NOCS_CATEGORIES if c in self.meshes]

    def draw(self, rng: np.random.Generator) -> ShapeInstance:
        """One object's shape (its category is `shape.category`)."""
        category = self.categories[int(rng.integers(len(self.categories)))]
        entries = self.meshes.get(category)
        if entries and (self.source == "meshes" or rng.random() < self.cfg.mesh_fraction):
            return load_instance(entries[int(rng.integers(len(entries)))])
        return make_instance(category, int(rng.choice(self.pool)), self.cfg.shape_seed)

    def models(self) -> list[tuple[str, Callable[[], ShapeInstance], int]]:
        """(model id, loader, point-sampling seed) of every instance scenes of this split can hold."""
        out: list[tuple[str, Callable[[], ShapeInstance], int]] = []
        if self.source != "meshes":
            for c in NOCS_CATEGORIES:
                out += [(model_id_of(c, i), functools.partial(make_instance, c, i, self.cfg.shape_seed), i)
                        for i in self.pool]
        for entries in self.meshes.values():
            out += [
                (
                    e.model_id,
                    functools.partial(load_instance, e),
                    int(name_hash(0, e.category, e.model_id) * 2**31),
                )
                for e in entries
            ]
        return out

    def check(self) -> int:
        """Read every imported mesh of the split (a bad file raises, naming it) and log its convention
        warnings."""
        n_warnings = 0
        for entries in self.meshes.values():
            for e in entries:
                for warning in check_instance(load_instance(e), e.path):
                    log.warning("%s", warning)
                    n_warnings += 1
        if self.meshes:
            counts = ", ".join(f"{c} {len(es)}" for c, es in self.meshes.items())
            log.info("imported meshes (%s): %s", self.source, counts)
        return n_warnings
