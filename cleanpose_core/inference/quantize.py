"""Int8 quantisation of the Estimator's parts for the `int8` runtime, with ONNX Runtime: static for the
convolutional parts, dynamic for the paper configuration's transformer parts.

Which parts: those built with `quantize` in `runtime.py`: Mask R-CNN's RPN head and mask head, its FPN and
the last MobileNetV3 stages, and the lite pose network's ResNet image backbone. On 2 cores of an AMD EPYC
(AVX512-VNNI) their ONNX Runtime time fell from 4.2 / 11.3 / 15.4 ms to 1.3 / 3.1 / 5.3 ms (RPN on a
320 x 448 frame, mask head on 11 crops, backbone on 7 crops) with outputs within about 2% of float32, and
Mask R-CNN's backbone + FPN from 14.1 to 10.9 ms with 2.7% error (quantising its early depthwise /
hard-swish stages too gives 47% error).

Dynamic (`quantize_matmuls_int8`: int8 weight MatMuls, activations quantised per call) for parts built with
`int8_matmuls`: DINOv2 ViT-S/14 and the keypoint trunk of the paper configuration (d_model 256). Measured on
3 objects: DINOv2 194 -> 81 ms, paper trunk 240 -> 172 ms (random weights; outputs within 3.3% of float32).
The lite trunk (d_model 128) was slower in int8 (19.1 -> 21.0 ms) and stays float32. The accuracy of these
two cannot be measured here: the paper configuration needs DINOv2 and ULIP-2 weights that cannot be
downloaded, so no trained paper model exists; `runtime: onnx` keeps them float32.

The static quantisation (ONNX Runtime's QDQ format, int8 weights per output channel, uint8 activations) is
calibrated on the activations the eager Estimator itself computes on `CALIBRATION_FRAMES` seeded synthetic
frames from the training shape pool (so no image of a validation or test split is seen), when `cleanpose
export` writes the exports (the synthetic engine needs open3d, `pip install 'cleanpose[synth]'`). A part that
no calibration frame reaches (a segmenter that detects nothing) cannot be quantised: ValueError.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

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
                captured[name].append(tuple((x.float() if x.is_floating_point() else x).detach().contiguous()
                                            .cpu().numpy() for x in flat))
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
        raise ValueError("no calibration inputs: no calibration frame reached this part (a segmenter that "
                         "detects nothing?)")

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


# MatMuls narrower than this stay float32 under dynamic quantisation (gates with one output channel gain
# nothing); MatMuls with a 1-D constant (a folded bias vector) too: ONNX Runtime's quantiser assumes a matrix.
MIN_MATMUL_COLUMNS = 8


def quantize_matmuls_int8(model_bytes: bytes) -> bytes:
    """`model_bytes` with its weight MatMuls dynamically quantised (int8 weights; activations quantised per
    call, so no calibration): ONNX Runtime's path for transformers."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load_model_from_string(model_bytes).graph
    weights = {init.name: numpy_helper.to_array(init).shape for init in graph.initializer}
    skip = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights
            and (len(weights[n.input[1]]) < 2 or weights[n.input[1]][-1] < MIN_MATMUL_COLUMNS)]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=skip, extra_options={"MatMulConstBOnly": True})
        return dst.read_bytes()
