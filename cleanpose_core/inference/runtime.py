"""CPU runtimes for the Estimator's networks: eager PyTorch (the reference) or ONNX Runtime for the dense parts.

`EstimatorConfig.runtime`:
- `eager`: every network runs in PyTorch as built; the reference the others are tested against.
- `onnx`: the convolutional parts (`PARTS`) run in ONNX Runtime on the CPU: Mask R-CNN's backbone + FPN and the
  pose network's image backbone (ResNet-18 stem..layer2 in the lite model, DINOv2 ViT-S/14 in the paper one).
  What stays in PyTorch: the RPN's and RoI heads' proposal logic (anchors, NMS, RoIAlign, mask pasting),
  PointNet++ (furthest-point sampling, ball query), attention and heads. Each part is read from its export
  next to the weights (`<weights stem>.<part>.onnx`, written by `cleanpose export`) when one made from the
  same weights file is there, else exported in memory when the Estimator is built (a few seconds, cached per
  process and weights file).
- `auto` (default): `onnx` when onnxruntime is installed and the device is the CPU, else `eager`.

Outputs equal the eager path's to float32 rounding (test/inference/test_runtime.py states the tolerance).
Why these parts: on 2 CPU cores (issue 21) the segmenter's backbone + FPN ran about 2x faster in ONNX Runtime
than in eager PyTorch (oneDNN, NHWC, BatchNorm folded); the rest of Mask R-CNN is data-dependent control flow.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from cleanpose_core.config import ConfigError
from cleanpose_core.io.artefacts import WeightsError
from cleanpose_core.io.onnx_artefacts import (check_onnx_metadata, onnx_artefact_path, onnx_metadata,
                                              write_onnx_artefact)

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "onnx")
OPSET = 17
_SESSION_CACHE: dict[tuple, object] = {}  # (part, source sha256) -> InferenceSession of an in-memory export


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The runtime `runtime` means on `device`: `auto` -> onnx or eager; raises ConfigError when `onnx` cannot
    run here."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    usable = device.type == "cpu" and onnx_runtime_available()
    if runtime == "onnx" and not usable:
        why = "the ONNX runtime runs on the CPU only" if device.type != "cpu" else \
            "onnxruntime is not installed (pip install 'cleanpose[onnx]')"
        raise ConfigError(f"runtime onnx: {why}; use runtime eager")
    if runtime == "auto":
        return "onnx" if usable else "eager"
    return runtime


# ---------------------------------------------------------------------------------------------------------
# Parts: which module of which network, its example input and the weights file it comes from


class _Part:
    """One exportable module: where it sits, an example input, its dynamic axes and outputs."""

    def __init__(self, name: str, owner: nn.Module, attr: str, example: torch.Tensor, dynamic: dict[int, str],
                 source: Path | None, dict_output: bool):
        self.name, self.owner, self.attr, self.example = name, owner, attr, example
        self.dynamic, self.source, self.dict_output = dynamic, source, dict_output

    @property
    def module(self) -> nn.Module:
        return getattr(self.owner, self.attr)


class _TupleOutput(nn.Module):
    """Exports a module that returns a dict of tensors as one returning their tuple."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return tuple(out.values()) if isinstance(out, dict) else out


def estimator_parts(estimator) -> list[_Part]:
    """The exportable parts of an Estimator's networks (none for the box-fit backend or a depth segmenter)."""
    from cleanpose_core.inference.estimator import SHIPPED_POSE_MODEL
    from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS, MaskRCNNSegmenter

    parts = []
    seg = estimator.segmenter
    seg = getattr(seg, "inner", seg)  # the re-scored segmenter wraps Mask R-CNN
    if isinstance(seg, MaskRCNNSegmenter):
        source = None if seg.config.random_weights else Path(seg.config.weights or DEFAULT_WEIGHTS)
        parts.append(_Part("maskrcnn_backbone", seg.model, "backbone", torch.zeros(1, 3, 320, 448),
                           {0: "batch", 2: "height", 3: "width"}, source, dict_output=True))
    model = getattr(estimator, "model", None)
    if model is not None:
        size = model.rgb_extractor.input_size
        source = Path(estimator.config.model_weights or SHIPPED_POSE_MODEL)
        parts.append(_Part("image_backbone", model.rgb_extractor, "backbone", torch.zeros(2, 3, size, size),
                           {0: "batch"}, source, dict_output=False))
    return parts


# ---------------------------------------------------------------------------------------------------------
# Export and sessions


def export_bytes(part: _Part) -> bytes:
    """The part as an ONNX model (float32, opset `OPSET`), from the eval-mode module on the CPU."""
    module = _TupleOutput(part.module).eval()
    with torch.no_grad():
        outputs = module(part.example)
    n_out = len(outputs) if isinstance(outputs, tuple) else 1
    names = [f"y{i}" for i in range(n_out)]
    axes = {"x": part.dynamic, **{n: {0: "batch"} for n in names}}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes cover
        torch.onnx.export(module, (part.example,), buffer, input_names=["x"], output_names=names,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def _session(model: bytes | str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # PyTorch runs between the parts on the same cores: ORT's threads must not spin-wait into its time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def load_session(part: _Part, threads: int):
    """An InferenceSession of `part`: its export file when it is there and made from the same weights, else an
    in-memory export (cached per process for a weights file)."""
    expected = onnx_metadata(part.name, part.source)
    if part.source is not None:
        path = onnx_artefact_path(part.source, part.name)
        if path.is_file():
            try:
                session = _session(str(path), threads)
                check_onnx_metadata(session.get_modelmeta().custom_metadata_map, path, expected)
                log.info("runtime onnx: %s from %s", part.name, path)
                return session
            except WeightsError as exc:
                log.warning("%s; exporting %s in memory instead", exc, part.name)
            except Exception as exc:  # an unreadable file: say so, and still run
                log.warning("%s: cannot load (%s); exporting %s in memory instead", path, exc, part.name)
    key = (part.name, expected["source_sha256"], threads)
    if part.source is not None and key in _SESSION_CACHE:
        return _SESSION_CACHE[key]
    session = _session(export_bytes(part), threads)
    if part.source is not None:
        _SESSION_CACHE[key] = session
    return session


class OrtModule(nn.Module):
    """A module whose forward runs an ONNX Runtime session (CPU tensors in and out, float32)."""

    def __init__(self, session, dict_keys: list[str] | None):
        super().__init__()
        self.session, self.dict_keys = session, dict_keys
        self.input_name = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor):
        feed = {self.input_name: x.detach().float().contiguous().cpu().numpy()}
        out = [torch.from_numpy(y) for y in self.session.run(None, feed)]
        if self.dict_keys is None:
            return out[0]
        return OrderedDict(zip(self.dict_keys, out))


def apply_runtime(estimator, runtime: str) -> str:
    """Switch the Estimator's exportable parts to `runtime` (after `resolve_runtime`); returns it."""
    runtime = resolve_runtime(runtime, estimator.torch_device)
    if runtime == "eager":
        return runtime
    threads = torch.get_num_threads()
    for part in estimator_parts(estimator):
        keys = None
        if part.dict_output:
            with torch.no_grad():
                keys = list(part.module(part.example).keys())
        setattr(part.owner, part.attr, OrtModule(load_session(part, threads), keys))
    return runtime


def export_estimator(estimator) -> list[Path]:
    """Write every part of an (eager) Estimator next to its weights file; returns the files written."""
    written = []
    for part in estimator_parts(estimator):
        if part.source is None:
            raise ValueError(f"{part.name}: random weights have no file to export next to")
        path = onnx_artefact_path(part.source, part.name)
        written.append(write_onnx_artefact(export_bytes(part), path, onnx_metadata(part.name, part.source)))
    return written


def part_differences(reference, other, seed: int = 0) -> dict[str, float]:
    """{part: max |difference| / max |reference|} of the two Estimators' parts on the same random input (eager
    reference against e.g. the onnx runtime)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for ref, oth in zip(estimator_parts(reference), estimator_parts(other)):
        x = torch.rand(ref.example.shape, generator=generator)
        with torch.no_grad():
            a, b = ref.module(x), oth.module(x)
        a, b = (list(a.values()), list(b.values())) if ref.dict_output else ([a], [b])
        out[ref.name] = max(float((u - v).abs().max() / u.abs().max().clamp_min(1e-12)) for u, v in zip(a, b))
    return out
