"""Static int8 quantisation of the Estimator's convolutional parts (the `int8` runtime), with ONNX Runtime.

Which parts: those built with `quantize` in `runtime.py`: Mask R-CNN's RPN head and mask head, its FPN and
the last MobileNetV3 stages, and the lite pose network's ResNet image backbone. On 2 cores of an AMD EPYC
(AVX512-VNNI) their ONNX Runtime time fell from 4.2 / 11.3 / 15.4 ms to 1.3 / 3.1 / 5.3 ms (RPN on a
320 x 448 frame, mask head on 11 crops, backbone on 7 crops) with outputs within about 2% of float32, and
Mask R-CNN's backbone + FPN from 14.1 to 10.9 ms with 2.7% error (quantising its early depthwise /
hard-swish stages too gives 47% error).

The quantisation is static (ONNX Runtime's QDQ format, int8 weights per output channel, uint8 activations),
calibrated on the activations the eager Estimator itself computes on `CALIBRATION_FRAMES` seeded synthetic
frames from the training shape pool (so no image of a validation or test split is seen). The synthetic engine
needs open3d (`pip install 'cleanpose[synth]'`); without it, and without an int8 export next to the weights,
the parts stay float32 (logged).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 16
CALIBRATION_SEED = 0
CALIBRATION = f"{CALIBRATION_FRAMES} synthetic train-pool frames, seed {CALIBRATION_SEED}, eager activations"


def synthetic_calibration_frames(n: int = CALIBRATION_FRAMES, seed: int = CALIBRATION_SEED):
    """`n` seeded (rgb, depth metres, Intrinsics, masks, labels) frames of the synthetic training pool
    (REAL275 camera, exact depth). Raises ImportError without the synthetic engine (open3d)."""
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import intrinsics_of, scene_rng
    from cleanpose_core.data.synthetic.render import SceneRenderer
    from cleanpose_core.data.synthetic.scene import compose_scene

    cfg = SynthConfig()
    K = intrinsics_of(cfg)
    for index in range(n):
        rng = scene_rng(seed, "train", index)
        scene = compose_scene(rng, "train", cfg.scene, cfg.camera, cfg.render, 1)
        frame = SceneRenderer(scene, K, 0, False).render(*scene.camera_poses[0], rng, 0.0)
        keep = [k for k in range(len(scene.objects)) if (frame.instance == k).sum() >= 200]
        masks = np.array([frame.instance == k for k in keep], bool).reshape(len(keep), *frame.depth.shape)
        labels = [scene.objects[k].shape.category for k in keep]
        yield frame.rgb, frame.depth.astype(np.float32), K, masks, labels


def calibration_inputs(estimator, modules: dict[str, torch.nn.Module]) -> dict[str, list[tuple]]:
    """{part name: the inputs its module got, one tuple of arrays per call} over the calibration frames, run
    through the (still eager) `estimator`: its segmenter when it has one, else the frames' ground-truth masks.
    The queue sampler is re-seeded afterwards, so the Estimator's first frames draw what a fresh one's do."""
    captured: dict[str, list] = {name: [] for name in modules}

    def hook(name):
        def record(_module, inputs, _output):
            flat = tuple(inputs[0]) if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) else inputs
            if all(x.shape[0] > 0 for x in flat):  # an empty batch says nothing about the value range
                captured[name].append(tuple(x.detach().float().contiguous().cpu().numpy() for x in flat))
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        for rgb, depth, K, masks, labels in synthetic_calibration_frames():
            if estimator.segmenter is None:
                if len(labels):
                    estimator.estimate(rgb, depth, K, "m", masks=masks, labels=labels)
            else:
                estimator.estimate(rgb, depth, K, "m")
    finally:
        for handle in handles:
            handle.remove()
        estimator.reset_queue_sampling()
    return captured


def quantize_int8(model_bytes: bytes, input_names: list[str], inputs: list[tuple[np.ndarray, ...]],
                  only: tuple[str, ...] | None = None) -> bytes:
    """The float32 ONNX model `model_bytes` statically quantised to int8 (QDQ), calibrated on `inputs`; with
    `only`, just the nodes whose name contains one of those strings."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not inputs:
        raise ValueError("no calibration inputs")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([dict(zip(input_names, arrays)) for arrays in inputs])

        def get_next(self):
            return next(self.feeds, None)

    nodes = None
    if only is not None:
        graph = onnx.load_model_from_string(model_bytes).graph
        nodes = [n.name for n in graph.node if any(s in n.name for s in only)]
        if not nodes:
            raise ValueError(f"no node name contains any of {only}")
    root = logging.getLogger()
    level = root.level
    # quantize_static logs a root-logger warning suggesting its pre-processing pass (shape inference and graph
    # optimisation), which changed neither the time nor the outputs of these parts (measured): muted.
    root.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:  # quantize_static reads and writes files
        src, dst = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_quantize=nodes)
        finally:
            root.setLevel(level)
        return dst.read_bytes()
