"""Imported meshes (`cleanpose synth --meshes DIR`): the three folder layouts, the NOCS canonical frame and
its checks, disjoint train/test instances, and a meshes.yaml folder rendered, predicted and evaluated end to
end.

Every mesh is built here with trimesh (nothing is downloaded); they are small so that the tests stay fast.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError
from cleanpose_core.data.synthetic import meshes as M
from cleanpose_core.data.synthetic.config import SceneConfig
from cleanpose_core.data.synthetic.shape_source import SHAPE_SOURCES, ShapeSource
from cleanpose_core.data.synthetic.shapes import PART_HANDLE

REPO = Path(__file__).resolve().parents[2]
# p_file = A @ p_nocs for the frames the tests write meshes in.
Z_UP_HANDLE_MINUS_Y = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # up: +z, front: -y
SHAPENET_V2 = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # up +Y, front -Z
MIRROR_Z = np.diag([1.0, 1.0, -1.0])  # NOCS obj_models CAMERA models


def _y_cylinder(radius: float, height: float, x: float = 0.0) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=radius, height=height, sections=32)
    m.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # axis z -> y
    m.apply_translation([x, 0.0, 0.0])
    return m


def can_nocs(radius=0.033, height=0.12) -> trimesh.Trimesh:
    return _y_cylinder(radius, height)


def mug_nocs(radius=0.04, height=0.1, open_top=True) -> trimesh.Trimesh:
    """Cup about +y with a box handle on the +x side; without its top cap it is not watertight."""
    cup = _y_cylinder(radius, height)
    if open_top:
        keep = ~((cup.face_normals[:, 1] > 0.9) & (cup.triangles_center[:, 1] > height / 2 - 1e-6))
        cup = trimesh.Trimesh(cup.vertices, cup.faces[keep])
    handle = trimesh.creation.box(extents=[0.03, 0.06, 0.012])
    handle.apply_translation([radius + 0.012, 0.0, 0.0])
    return trimesh.util.concatenate([cup, handle])


def laptop_nocs(bump_z: float = 0.0) -> trimesh.Trimesh:
    """A thin box; `bump_z` adds a knob on the top at that z (a marker that a mirror moves)."""
    parts = [trimesh.creation.box(extents=[0.24, 0.02, 0.32])]
    if bump_z:
        knob = trimesh.transformations.translation_matrix([0, 0.02, bump_z])
        parts.append(trimesh.creation.box(extents=[0.03, 0.03, 0.03], transform=knob))
    return trimesh.util.concatenate(parts)


def in_frame(mesh: trimesh.Trimesh, A: np.ndarray) -> trimesh.Trimesh:
    """`mesh` (NOCS axes) with its vertices written in the file frame p_file = A @ p_nocs."""
    return trimesh.Trimesh(mesh.vertices @ np.asarray(A).T, mesh.faces, process=False)


def write_generic(root: Path, extra: list[dict] | None = None) -> Path:
    """A meshes.yaml folder: two of each of bottle, can, laptop and mug, in OBJ / PLY / STL / GLB."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for k in range(2):
        can = in_frame(can_nocs(0.03 + 0.006 * k, 0.11 + 0.01 * k), Z_UP_HANDLE_MINUS_Y)
        can.export(root / f"can{k}.stl")
        entries.append({"file": f"can{k}.stl", "category": "can", "up": "+z", "front": "-y"})
        bottle = can_nocs(0.035, 0.2 + 0.03 * k)
        bottle.apply_scale(1000.0)  # in millimetres
        bottle.export(root / f"bottle{k}.ply")
        entries.append({"file": f"bottle{k}.ply", "category": "bottle", "scale": 0.001})
        laptop_nocs().export(root / f"laptop{k}.glb")
        entries.append({"file": f"laptop{k}.glb", "category": "laptop", "size_m": [0.3, 0.025, 0.4]})
        in_frame(mug_nocs(0.04 + 0.005 * k), Z_UP_HANDLE_MINUS_Y).export(root / f"mug{k}.obj")
        r = 0.04 + 0.005 * k  # size_m: the cup's diameter plus the handle's reach along x
        entries.append({"file": f"mug{k}.obj", "category": "mug", "up": "+z", "front": "-y",
                        "size_m": [2 * r + 0.027, 0.1, 2 * r]})
    (root / "meshes.yaml").write_text(yaml.safe_dump(entries + (extra or []), sort_keys=False))
    return root


def write_shapenet_v2(root: Path) -> Path:
    for synset, model, mesh in (("02946921", "c0ffee01", can_nocs()), ("03797390", "beef0001", mug_nocs()),
                                ("03797390", "beef0002", mug_nocs(0.05))):
        path = root / synset / model / "models" / "model_normalized.obj"
        path.parent.mkdir(parents=True)
        in_frame(mesh, SHAPENET_V2).export(path)
    return root


def write_nocs_obj_models(root: Path) -> Path:
    for subset, model in (("train", "aaa1"), ("val", "bbb2")):
        path = root / subset / "03642806" / model / "model.obj"
        path.parent.mkdir(parents=True)
        in_frame(laptop_nocs(bump_z=0.1), MIRROR_Z).export(path)
    (root / "real_train").mkdir()
    mug_nocs().export(root / "real_train" / "mug_white_norm.obj")
    (root / "real_train" / "mug_white_norm.txt").write_text("0.107 0.1 0.08\n")
    (root / "real_test").mkdir()
    can_nocs().export(root / "real_test" / "can_soda_norm.obj")
    trimesh.creation.box().export(root / "real_test" / "chair_norm.obj")  # not a NOCS category: skipped
    return root


def _by_id(folder: Path) -> dict[str, M.MeshEntry]:
    return {e.model_id: e for e in M.read_catalogue(str(folder), 0)}


def test_meshes_yaml_is_canonicalised_to_the_nocs_frame_with_real_sizes(tmp_path):
    entries = _by_id(write_generic(tmp_path / "generic"))
    assert sorted(entries) == sorted(f"{c}{k}" for c in ("bottle", "can", "laptop", "mug") for k in range(2))
    for e in entries.values():
        shape = M.load_instance(e)
        lo, hi = shape.mesh.bounds
        assert np.allclose(lo + hi, 0.0, atol=1e-6) and np.isclose(np.linalg.norm(hi - lo), 1.0)
        assert np.allclose(shape.extents, hi - lo) and M.check_instance(shape, e.path) == []
    can = M.load_instance(entries["can0"])  # written z-up: its height is along y again
    assert can.extents[1] > 1.5 * can.extents[0] and np.isclose(can.extents[0], can.extents[2], atol=1e-3)
    assert can.metric_scale is None  # drawn from scene.scale_ranges
    assert np.isclose(
        M.load_instance(entries["bottle1"]).metric_scale, np.linalg.norm([0.07, 0.23, 0.07]), rtol=0.01
    )
    assert np.isclose(M.load_instance(entries["laptop0"]).metric_scale, np.linalg.norm([0.3, 0.025, 0.4]))
    mug = M.load_instance(entries["mug0"])  # open top (not watertight), handle written along -y
    assert not mug.mesh.is_watertight
    assert M.mug_handle(mug.mesh)[0] == "+x"
    handle = mug.face_parts == PART_HANDLE
    assert handle.any() and (mug.mesh.triangles_center[handle, 0] > 0.1).all()


def test_shapenet_v2_models_are_rotated_from_front_minus_z_to_the_nocs_front_x(tmp_path):
    entries = _by_id(write_shapenet_v2(tmp_path / "ShapeNetCore.v2"))
    assert {e.category for e in entries.values()} == {"can", "mug"}
    assert {e.split for e in entries.values() if e.category == "mug"} == {"train", "test"}  # 2 mugs: one each
    for e in entries.values():
        shape = M.load_instance(e)
        assert M.check_instance(shape, e.path) == [], e.model_id
    assert M.mug_handle(M.load_instance(entries["beef0001"]).mesh)[0] == "+x"


def test_nocs_obj_models_split_by_folder_unmirror_camera_models_and_read_real_sizes(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        entries = _by_id(write_nocs_obj_models(tmp_path / "obj_models"))
    assert "chair_norm" in caplog.text and "chair_norm" not in entries
    assert {m: e.split for m, e in entries.items()} == {
        "aaa1": "train", "bbb2": "test", "mug_white_norm": "train", "can_soda_norm": "test"}
    laptop = M.load_instance(entries["aaa1"])  # the knob was written at -z (mirrored): it is back at +z
    top = laptop.mesh.vertices[laptop.mesh.vertices[:, 1] > laptop.mesh.bounds[1, 1] - 1e-6]
    assert top[:, 2].mean() > 0.1
    mug = M.load_instance(entries["mug_white_norm"])
    assert entries["mug_white_norm"].size_m == (0.107, 0.1, 0.08)
    assert np.isclose(mug.metric_scale, np.linalg.norm([0.107, 0.1, 0.08]))
    assert (
        M.check_instance(mug, "x") == []
        and M.check_instance(M.load_instance(entries["can_soda_norm"]), "x") == []
    )


def test_convention_checks_warn_and_name_the_file(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    can_nocs().export(root / "lying_can.obj")  # symmetric about y in the file, but declared z-up
    in_frame(mug_nocs(), np.diag([-1.0, 1.0, -1.0])).export(root / "backwards_mug.obj")  # handle along -x
    (root / "meshes.yaml").write_text(yaml.safe_dump([
        {"file": "lying_can.obj", "category": "can", "up": "+z", "front": "+x"},
        {"file": "backwards_mug.obj", "category": "mug"}]))
    entries = _by_id(root)
    [can_warning] = M.check_instance(M.load_instance(entries["lying_can"]), entries["lying_can"].path)
    assert "lying_can.obj" in can_warning and "symmetric about y" in can_warning
    assert "[0.0, 0.0, 1.0]" in can_warning  # the measured axis: the file's y went to NOCS z
    [mug_warning] = M.check_instance(M.load_instance(entries["backwards_mug"]), entries["backwards_mug"].path)
    assert "backwards_mug.obj" in mug_warning and "-x" in mug_warning


def test_splits_are_disjoint_deterministic_and_follow_each_name():
    def items(n, pinned=None):
        out = [{"model_id": f"m{i:03d}", "category": NOCS_CATEGORIES[i % 6], "split": None} for i in range(n)]
        if pinned:
            out.append({"model_id": "pinned", "category": "mug", "split": pinned})
        return M.assign_splits(out, shape_seed=0)

    for listing in (items(12), items(24), items(60, pinned="test")):
        for cat in NOCS_CATEGORIES:  # >= 2 meshes per category: both splits get one
            group = [it for it in listing if it["category"] == cat]
            assert {it["split"] for it in group} == {"train", "test"}
            # Each split is the name's hash, but for at most one mesh moved to fill an empty split.
            by_hash = ["train" if M.name_hash(0, cat, it["model_id"]) < 0.5 else "test" for it in group]
            moved = [it for it, h in zip(group, by_hash) if it["split"] != h and it["model_id"] != "pinned"]
            assert len(moved) <= 1 and (not moved or len(set(by_hash)) == 1)
    assert items(24) == items(24)
    assert next(it for it in items(60, pinned="test") if it["model_id"] == "pinned")["split"] == "test"
    assert M.assign_splits([{"model_id": "a", "category": "can", "split": None}], 0)[0]["split"] in (
        "train",
        "test",
    )


def test_shape_source_keeps_held_out_meshes_out_of_training_and_mixes_when_asked(tmp_path):
    folder = str(write_generic(tmp_path / "generic"))
    cfg = SceneConfig(shape_source="meshes", meshes=folder, pool_size=4)
    train, test = ShapeSource("train", cfg), ShapeSource("test", cfg)
    train_ids, test_ids = {m for m, _, _ in train.models()}, {m for m, _, _ in test.models()}
    assert train_ids and test_ids and not train_ids & test_ids
    assert len(train_ids | test_ids) == 8
    rng = np.random.default_rng(0)
    assert {test.draw(rng).model_id for _ in range(60)} == test_ids
    mixed = ShapeSource(
        "test", SceneConfig(shape_source="mixed", meshes=folder, pool_size=4, mesh_fraction=0.5)
    )
    drawn = [mixed.draw(rng) for _ in range(200)]
    ids = {s.model_id for s in drawn}
    assert test_ids <= ids and any(s.model_id.startswith("camera_") for s in drawn) and not ids & train_ids
    with pytest.raises(ValueError, match="needs a meshes folder"):
        SceneConfig(shape_source="meshes").validate()
    from cleanpose_core.data.synthetic import cli  # its literal copy (no engine import for `--help`)

    assert cli.SHAPE_SOURCE_CHOICES == SHAPE_SOURCES


def test_meshes_yaml_errors_name_the_file_and_entry(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    can_nocs().export(root / "a.obj")
    for entry, message in (
        ({"file": "a.obj", "category": "cup"}, "category must be one of"),
        ({"file": "b.obj", "category": "can"}, "file not found"),
        ({"file": "a.obj", "category": "can", "up": "+y", "front": "-y"}, "different axes"),
        ({"file": "a.obj", "category": "can", "colour": "red"}, "unknown keys"),
    ):
        (root / "meshes.yaml").write_text(yaml.safe_dump([entry]))
        M.read_catalogue.cache_clear()
        with pytest.raises(ConfigError, match=message) as info:
            M.read_catalogue(str(root), 0)
        assert "meshes.yaml" in str(info.value)


def test_cli_synth_renders_a_meshes_yaml_folder_that_goes_through_predict_and_eval(tmp_path, capsys):
    from cleanpose_core.cli import main
    from cleanpose_core.eval.metrics import evaluate
    from cleanpose_core.eval.protocol import PROTOCOLS
    from cleanpose_core.eval.results import load_results

    folder = write_generic(tmp_path / "generic")
    intrinsics = [295.5, 295.1, 161.3, 122.1]  # REAL275 at half resolution
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "frames_per_scene": 2, "depth_model": "ideal", "n_model_points": 128,
        "camera": {"intrinsics": intrinsics, "width": 320, "height": 240, "distance": [0.45, 0.65]},
        "scene": {"objects": [3, 4], "distractors": [0, 1]}, "render": {"threads": 1}}))
    out, res = tmp_path / "split", tmp_path / "results"
    assert main(["synth", "--out", str(out), "--scenes", "2", "--split", "test", "--meshes", str(folder),
                 "--config", str(cfg), "--quiet"]) == 0
    written = yaml.safe_load((out / "test" / "config.yaml").read_text())["config"]["scene"]
    assert written["shape_source"] == "meshes" and written["meshes"] == str(folder.resolve())
    test_ids = {e.model_id for e in M.read_catalogue(str(folder.resolve()), 0) if e.split == "test"}
    with open(out / "obj_models" / "test.pkl", "rb") as f:
        models = pickle.load(f)
    assert set(models) == test_ids and all(v.shape == (128, 3) for v in models.values())
    n_labelled = 0
    for prefix in (out / "test_list.txt").read_text().split():
        with open(out / f"{prefix}_label.pkl", "rb") as f:
            label = pickle.load(f)
        assert set(label["model_list"]) <= test_ids  # only held-out meshes in the test split
        n_labelled += len(label["model_list"])
    assert n_labelled > 0

    assert main(["predict", "--data", str(out), "--out", str(res), "--masks", "gt", "--device", "cpu",
                 "--intrinsics", *map(str, intrinsics)]) == 0
    assert len(list(res.glob("results_*.pkl"))) == len((out / "test_list_all.txt").read_text().split())
    assert main(["eval", "--results", str(res), "--json", str(tmp_path / "eval.json")]) == 0
    assert (tmp_path / "eval.json").is_file() and f"{n_labelled} objects" in capsys.readouterr().out
    evaluation = evaluate(load_results(str(res), 6), PROTOCOLS["nocs"])
    assert int(evaluation.num_gt.sum()) == n_labelled == int(evaluation.num_pred.sum())
    present = {NOCS_CATEGORIES[c] for c in np.nonzero(evaluation.num_gt)[0]}
    assert present <= {"bottle", "can", "laptop", "mug"}


def test_cli_synth_rejects_a_mesh_source_without_meshes(tmp_path, caplog):
    from cleanpose_core.cli import main

    assert main(["synth", "--out", str(tmp_path / "o"), "--scenes", "1", "--split", "test",
                 "--shape-source", "mixed", "--quiet"]) == 2
    assert "needs a meshes folder" in caplog.text
