"""Teacher pre-training data, confounder-queue initialisation and the teacher feature cache."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from torch import nn

from cleanpose_core.config import ConfigError
from cleanpose_core.io import WeightsError
from cleanpose_core.models.confounder_queue import ConfounderQueue, QueueConfig
from cleanpose_core.train.feature_cache import TeacherFeatureCache
from cleanpose_core.train.queue_init import (extract_queue, load_queue, load_queue_into, random_queue,
                                              save_queue)
from cleanpose_core.train.teacher import ModelPointClouds, TeacherTrainConfig, load_teacher


def test_teacher_samples_are_centred_metric_partial_views_with_disjoint_val_models(dpdn_root):
    cfg = TeacherTrainConfig(points=256, val_fraction=0.3, seed=1)
    train_set, val_set = ModelPointClouds(dpdn_root, cfg, "train"), ModelPointClouds(dpdn_root, cfg, "val")
    assert len(train_set) == 7 and len(val_set) == 3 and not set(train_set.ids) & set(val_set.ids)
    np.random.seed(0)
    for i in range(len(train_set)):
        item = train_set[i]
        pts = item["points"].numpy()
        assert pts.shape == (256, 3) and pts.dtype == np.float32
        np.testing.assert_allclose(pts.mean(0), 0.0, atol=1e-6)
        model_id = train_set.ids[i]
        assert item["label"] == int(model_id.split("_")[1]) % 6
        diameter = pdist(pts).max()  # rotation-invariant size of the view
        assert diameter <= train_set.scales[i][0] + 0.01  # metres: within the object's diagonal (+ noise)
        assert diameter >= 0.3 * train_set.scales[i][0]  # a partial view, not a degenerate blob


def test_teacher_data_without_models_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="obj_models"):
        ModelPointClouds(tmp_path, TeacherTrainConfig(), "train")


class _RawPoints(torch.utils.data.Dataset):
    """pts offset by 1 m in z (camera frame, not centred); category = index % 3."""

    def __len__(self):
        return 30

    def __getitem__(self, i):
        pts = torch.full((16, 3), float(i)) + torch.tensor([0.0, 0.0, 1.0])
        return {"pts": pts, "category_label": torch.tensor([i % 3])}


class _MeanEncoder(nn.Module):
    """(B, N, 3) -> (B, 4): the raw mean point and a flag for eval mode."""

    def forward(self, pts):
        return torch.cat([pts.mean(1), torch.full((len(pts), 1), float(not self.training))], 1)


def test_queue_holds_eval_mode_features_of_raw_points_n_q_per_category():
    queue = extract_queue(_MeanEncoder().train(), _RawPoints(), cat_num=3, n_q=4, batch_size=7, seed=2)
    assert queue.shape == (3, 4, 4)
    assert torch.all(queue[..., 3] == 1.0)  # the teacher ran in eval mode
    assert torch.all(queue[..., 2] == queue[..., 0] + 1.0)  # raw points: not centred (z keeps its +1 m)
    for c in range(3):
        ids = queue[c, :, 0].long()
        assert torch.all(ids % 3 == c) and len(set(ids.tolist())) == 4  # own category, distinct samples
    again = extract_queue(_MeanEncoder(), _RawPoints(), cat_num=3, n_q=4, batch_size=5, seed=2)
    assert torch.equal(queue, again)  # the seeded order, not the batch size, decides the entries


def test_queue_init_with_too_few_samples_names_the_short_categories():
    with pytest.raises(ValueError, match=r"after 1 pass\(es\): categories \{.*\} .* fewer than 11"):
        extract_queue(_MeanEncoder(), _RawPoints(), cat_num=3, n_q=11, max_passes=5)


def test_queue_file_round_trip_and_shape_checked_loading(tmp_path):
    q = random_queue(3, 5, 8, seed=1)
    save_queue(q, tmp_path / "q.pt", "test")
    assert torch.equal(load_queue(tmp_path / "q.pt"), q)
    model = nn.Module()
    model.queue = ConfounderQueue(QueueConfig(length=5, sample_num=2), cat_num=3, dim=8)
    load_queue_into(model, tmp_path / "q.pt")
    assert torch.equal(model.queue.entries, q)
    save_queue(random_queue(6, 80, 256), tmp_path / "big.pt", "test")
    with pytest.raises(WeightsError, match=r"big\.pt.*\(3, 5, 8\).*\(6, 80, 256\)"):
        load_queue_into(model, tmp_path / "big.pt")
    with pytest.raises(WeightsError, match="not found.*missing.pt"):
        load_queue(tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="q.pt is not a CleanPose teacher file.*a confounder queue file"):
        load_teacher(tmp_path / "q.pt")
    with pytest.raises(ConfigError, match="no confounder queue"):
        load_queue_into(nn.Module(), tmp_path / "q.pt")


def test_feature_cache_centres_points_skips_known_keys_and_round_trips(tmp_path):
    calls = []

    class Enc(nn.Module):
        def forward(self, pts):
            calls.append(len(pts))
            return torch.cat([pts.mean(1), pts.abs().amax(1)], 1)  # (B, 6)

    cache = TeacherFeatureCache(6)
    pts = torch.rand(3, 10, 3) + 5.0
    assert cache.fill(Enc(), [(["a", "b", "c"], pts)]) == 3
    assert cache.fill(Enc(), [(["a", "d"], pts[:2])]) == 1 and calls == [3, 1]
    feats, hit = cache.get(["c", "zzz", "a"])
    assert hit.tolist() == [True, False, True]
    torch.testing.assert_close(feats[0, :3], torch.zeros(3), atol=1e-3, rtol=0)  # centred input
    assert torch.all(feats[1] == 0)
    cache.save(tmp_path / "cache.pt")
    loaded = TeacherFeatureCache.load(tmp_path / "cache.pt")
    assert len(loaded) == 4 and torch.equal(loaded.get(["a", "d"])[0], cache.get(["a", "d"])[0])
    with pytest.raises(WeightsError, match="missing.pt"):
        TeacherFeatureCache.load(tmp_path / "missing.pt")
    save_queue(random_queue(3, 5, 8), tmp_path / "q.pt", "test")
    with pytest.raises(WeightsError, match="q.pt is not a teacher feature cache file.*confounder queue file"):
        TeacherFeatureCache.load(tmp_path / "q.pt")


def test_the_shared_classification_loop_learns_and_stops_loudly_on_a_non_finite_loss():
    from cleanpose_core.train.classification import train_classification

    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])

    def draw(it):
        labels = torch.arange(8) % 2
        return centres[labels][:, None, :] + 0.05 * torch.randn(8, 16, 3), labels

    def fit(model, iterations, lr):
        return train_classification(model, draw, iterations=iterations, lr=lr, weight_decay=0.0,
                                    device=torch.device("cpu"), name="toy", progress=False)

    result = fit(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), 60, 0.05)
    assert result["accuracy"] > 90 and result["loss"] < 0.3
    nan_model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        nan_model[1].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="toy: non-finite loss nan at iteration 0"):
        fit(nan_model, 3, 0.01)
