"""Exact resume with the real CleanPose network (lite preset, shrunk) and its real loss.

The loop-level guarantees are proven on a stand-in in test_trainer_standin.py; this test adds what only the
real network has: its own augmentation and queue-sampling generators, the frozen teacher in train mode
(DropPath), BatchNorm statistics and the confounder-queue buffer. Data are random samples with the reader's
keys and shapes, so the test does not depend on a dataset reader; the run is K/2 iterations, a checkpoint, a
fresh process that resumes, K/2 more, against K uninterrupted iterations: bit for bit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from cleanpose_core.train.components import load_model_config
from cleanpose_core.train.config import DataSourceConfig, TrainConfig
from cleanpose_core.train.schedules import ScheduleConfig
from cleanpose_core.train.trainer import FINAL_NAME, Components, train
from tiny_cleanpose import TINY

REPO = Path(__file__).resolve().parents[2]
N_POINTS, IMAGE = 64, TINY["image"]["image_size"]

class RandomObjects(torch.utils.data.Dataset):
    """Samples with the NOCS reader's keys: an object ~0.7 m in front of the camera, random pose."""

    def __init__(self, size: int = 10) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)  # the object; point noise comes from the seeded global RNG
        rot = torch.linalg.qr(torch.randn(3, 3, generator=g))[0]
        rot = rot * torch.sign(torch.det(rot))
        trans = torch.tensor([0.0, 0.0, 0.7]) + 0.05 * torch.randn(3, generator=g)
        size = 0.1 + 0.1 * torch.rand(3, generator=g)
        nocs = (torch.rand(N_POINTS, 3, generator=g) - 0.5) * size / size.norm()
        pts = (size.norm() * nocs) @ rot.T + trans + 0.001 * torch.randn(N_POINTS, 3)
        return {"pts": pts, "rgb": torch.randn(3, IMAGE, IMAGE, generator=g),
                "choose": torch.randint(0, IMAGE * IMAGE, (N_POINTS,), generator=g),
                "category_label": torch.tensor(i % 6), "translation_label": trans, "rotation_label": rot,
                "size_label": size, "model": nocs, "qo": nocs,
                "pc_mask": torch.ones(N_POINTS, dtype=torch.bool)}


def tiny_components(cfg: TrainConfig, device: torch.device) -> Components:
    import warnings

    from cleanpose_core.models.cleanpose import build_model
    from cleanpose_core.models.losses import build_loss

    model_cfg = load_model_config(REPO / "config/model/cleanpose_lite.yaml", {"seed": cfg.seed, **TINY})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weight teacher warning: expected here
        model = build_model(model_cfg)
    from cleanpose_core.config import to_dict

    return Components(model=model, loss_fn=build_loss(model_cfg), model_config=to_dict(model_cfg),
                      build_dataset=lambda s: RandomObjects(), generators=dict(model.generators))


def tiny_config(iterations: int) -> TrainConfig:
    return TrainConfig(model="config/model/cleanpose_lite.yaml",
                       sources=[DataSourceConfig(name="a", batch_size=3),
                                DataSourceConfig(name="b", batch_size=2)],
                       schedule=ScheduleConfig(base_lr=1e-4, max_lr=1e-3, step_size_up=2, step_size_down=2),
                       iterations=iterations, checkpoint_every=100, log_every=1, seed=5, device="cpu",
                       threads=1)


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def test_cleanpose_resume_in_fresh_process_is_bit_exact(tmp_path):
    k = 4
    train(tiny_config(k), tmp_path / "straight", progress=False, build_components=tiny_components)
    train(tiny_config(k // 2), tmp_path / "split", progress=False, build_components=tiny_components)
    subprocess.run([sys.executable, __file__, "resume", str(tmp_path / "split"), str(k)], env=_env(),
                   check=True, cwd=REPO, timeout=300)
    a = torch.load(tmp_path / "straight" / FINAL_NAME, weights_only=True)
    b = torch.load(tmp_path / "split" / FINAL_NAME, weights_only=True)
    assert a["step"] == b["step"] == k
    assert "queue.entries" in a["model"] and not any(key.startswith("teacher.") for key in a["model"])
    initial = tiny_components(tiny_config(k), torch.device("cpu")).model.state_dict()
    assert not torch.equal(a["model"]["queue.entries"], initial["queue.entries"])  # the queue was pushed to
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_cleanpose_under_torchrun_keeps_weights_and_queue_identical_across_ranks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                    "127.0.0.1", "--master_port", str(port), __file__, "ddp", str(tmp_path)],
                   env=_env(), check=True, cwd=REPO, timeout=300)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = tiny_components(tiny_config(2), torch.device("cpu")).model.state_dict()
    assert not torch.equal(r0["queue.entries"], initial["queue.entries"])
    for key, value in r0.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # BatchNorm statistics stay per rank (broadcast_buffers=False); rank 0's are saved
        assert torch.equal(value, r1[key]), key


def _ddp_main(out_dir: str) -> None:
    built = []

    def components(cfg, device):
        built.append(tiny_components(cfg, device))
        return built[-1]

    train(tiny_config(2), Path(out_dir) / "run", progress=False, build_components=components)
    state = {k: v for k, v in built[0].model.state_dict().items() if not k.startswith("teacher.")}
    torch.save(state, Path(out_dir) / f"rank{os.environ['RANK']}.pt")


if __name__ == "__main__":
    if sys.argv[1] == "resume":
        train(tiny_config(int(sys.argv[3])), sys.argv[2], resume="auto", progress=False,
              build_components=tiny_components)
    elif sys.argv[1] == "ddp":
        _ddp_main(sys.argv[2])
