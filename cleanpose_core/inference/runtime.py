"""CPU runtimes for the Estimator's networks: eager PyTorch (the reference), bfloat16 or ONNX Runtime.

`EstimatorConfig.runtime`:
- `eager`: every network runs in PyTorch, float32, as built; the reference the others are tested against.
- `bf16`: the dense parts (`estimator_parts`: Mask R-CNN's backbone + FPN, RPN head, box head and mask
  head; the pose network's image backbone, ResNet-18 stem..layer2 in the lite model, DINOv2 ViT-S/14 in the
  paper one) run under `torch.autocast` bfloat16 (oneDNN AMX / AVX512-BF16 kernels) and hand float32 to the
  rest. Only where the CPU has native bfloat16 (`bf16_supported`); elsewhere it is emulated, slower.
- `onnx`: the backbones (`export=True` parts) run in ONNX Runtime, float32, the heads as in `bf16` where
  the CPU has it. Each backbone is read from its export next to the weights (`<weights stem>.<part>.onnx`,
  written by `cleanpose export`) when one made from the same weights file is there, else exported in memory
  when the Estimator is built (seconds; cached per process and weights file).
- `auto` (default): `onnx` when onnxruntime is installed and exports of the Estimator's weights lie next
  to them (the user ran `cleanpose export`), else `bf16` where the CPU has native bfloat16, else `eager`.
  A CUDA device always runs `eager` (the GPU path was not measured for issue 21).

What stays float32 PyTorch in every runtime: the proposal logic (anchors, NMS, RoIAlign, box decoding,
mask pasting), the point classifier, PointNet++ (furthest-point sampling, ball query), attention and the pose
heads. Measured in the pipeline on 2 cores of a Xeon with AMX (issue 21, 3 objects, quiet): the dense parts
are ~45 of ~115 ms; bf16 took the frame to ~105 ms, ONNX Runtime float32 backbones to ~114 ms, ONNX backbones
+ bf16 heads to ~107 ms (torch.compile of PointNet++ was slower than eager: graph breaks).
Tolerances (test/inference/test_runtime.py): ONNX parts within 1e-4 of eager relative to their largest
output; bf16 parts within 5e-2; accuracy on the seed-7 validation split in docs/results/runtime_s7.json.
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
from cleanpose_core.device import bf16_supported
from cleanpose_core.io.artefacts import WeightsError
from cleanpose_core.io.onnx_artefacts import (
    check_onnx_metadata,
    onnx_artefact_path,
    onnx_metadata,
    write_onnx_artefact,
)
from cleanpose_core.shipped import shipped_file

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "bf16", "onnx")
SHIPPED_POSE_MODEL_NAME = (
    "cleanpose_lite.pt"  # the Estimator's SHIPPED_POSE_MODEL (which imports this module)
)
OPSET = 17
_SESSION_CACHE: dict[tuple, object] = {}  # (part, source sha256) -> InferenceSession of an in-memory export


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: torch.device, exports_present: bool = False) -> str:
    """The runtime `runtime` means on `device` (`auto`: see the module docstring); ConfigError when `onnx` or
    `bf16` cannot run here."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    cpu = device.type == "cpu"
    if runtime == "onnx" and not (cpu and onnx_runtime_available()):
        why = "onnxruntime is not installed (pip install 'cleanpose[onnx]')" if cpu else "CPU only"
        raise ConfigError(f"runtime onnx: {why}; use runtime eager")
    if runtime == "bf16" and not (cpu and bf16_supported()):
        raise ConfigError(
            "runtime bf16: needs a CPU with native bfloat16 (AVX512-BF16 or AMX), CPU only; use runtime eager"
        )
    if runtime == "auto":
        if not cpu:
            return "eager"
        if exports_present and onnx_runtime_available():
            return "onnx"
        return "bf16" if bf16_supported() else "eager"
    return runtime


# ---------------------------------------------------------------------------------------------------------
# Parts: which module of which network, its example input and the weights file it comes from


class _Part:
    """One exportable module: where it sits, an example input, its dynamic axes and outputs."""

    def __init__(
        self,
        name: str,
        owner: nn.Module,
        attr: str,
        example: torch.Tensor | None,
        dynamic: dict[int, str] | None,
        source: Path | None,
        dict_output: bool = False,
    ):
        self.name, self.owner, self.attr, self.example = name, owner, attr, example
        self.dynamic, self.source, self.dict_output = dynamic, source, dict_output
        self.export = example is not None  # a backbone ONNX Runtime takes; the heads only change precision

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
    from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS, MaskRCNNSegmenter

    parts = []
    seg = estimator.segmenter
    seg = getattr(seg, "inner", seg)  # the re-scored segmenter wraps Mask R-CNN
    if isinstance(seg, MaskRCNNSegmenter):
        source = None if seg.config.random_weights else Path(seg.config.weights or DEFAULT_WEIGHTS)
        parts.append(
            _Part(
                "maskrcnn_backbone",
                seg.model,
                "backbone",
                torch.zeros(1, 3, 320, 448),
                {0: "batch", 2: "height", 3: "width"},
                source,
                dict_output=True,
            )
        )
        heads = seg.model.roi_heads
        parts += [
            _Part("maskrcnn_rpn_head", seg.model.rpn, "head", None, None, source),
            _Part("maskrcnn_box_head", heads, "box_head", None, None, source),
            _Part("maskrcnn_mask_head", heads, "mask_head", None, None, source),
        ]
    model = getattr(estimator, "model", None)
    if model is not None:
        parts += pose_model_parts(
            model, Path(estimator.config.model_weights or shipped_file(SHIPPED_POSE_MODEL_NAME))
        )
    return parts


def pose_model_parts(model: nn.Module, source: Path | None) -> list[_Part]:
    """The dense parts of a CleanPose network: its image backbone (ResNet-18 stem..layer2, or DINOv2)."""
    size = model.rgb_extractor.input_size
    return [
        _Part(
            "image_backbone",
            model.rgb_extractor,
            "backbone",
            torch.zeros(2, 3, size, size),
            {0: "batch"},
            source,
            dict_output=False,
        )
    ]


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
        torch.onnx.export(
            module,
            (part.example,),
            buffer,
            input_names=["x"],
            output_names=names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
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


def _float(out):
    if isinstance(out, dict):
        return OrderedDict((k, _float(v)) for k, v in out.items())
    if isinstance(out, (list, tuple)):
        return type(out)(_float(v) for v in out)
    return out.float() if torch.is_tensor(out) and out.is_floating_point() else out


class Bf16Module(nn.Module):
    """Runs `inner` under CPU bfloat16 autocast; returns float32 (tensors, or dicts / lists / tuples of
    them)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inner(*args)
        return _float(out)


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


def exports_present(parts: list[_Part]) -> bool:
    """Every backbone of `parts` has an export file next to its weights (not yet checked against them)."""
    backbones = [p for p in parts if p.export]
    return bool(backbones) and all(
        p.source is not None and onnx_artefact_path(p.source, p.name).is_file() for p in backbones
    )


def apply_runtime(estimator, runtime: str) -> str:
    """Switch the Estimator's dense parts to `runtime` (`auto` resolved first); returns the runtime used."""
    parts = estimator_parts(estimator)
    runtime = resolve_runtime(runtime, estimator.torch_device, exports_present(parts))
    apply_parts(parts, runtime)
    return runtime


def apply_parts(parts: list[_Part], runtime: str) -> None:
    """Swap each part for its `runtime` version (a resolved runtime: eager, bf16 or onnx)."""
    if runtime == "eager":
        return
    threads = torch.get_num_threads()
    for part in parts:
        if runtime == "onnx" and part.export:
            keys = None
            if part.dict_output:
                with torch.no_grad():
                    keys = list(part.module(part.example).keys())
            setattr(part.owner, part.attr, OrtModule(load_session(part, threads), keys))
        elif runtime == "bf16" or bf16_supported():
            setattr(part.owner, part.attr, Bf16Module(part.module))


def export_estimator(estimator) -> list[Path]:
    """Write every part of an (eager) Estimator next to its weights file; returns the files written."""
    written = []
    for part in (p for p in estimator_parts(estimator) if p.export):
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
    backbones = [[p for p in estimator_parts(e) if p.export] for e in (reference, other)]
    for ref, oth in zip(*backbones):
        x = torch.rand(ref.example.shape, generator=generator)
        with torch.no_grad():
            a, b = ref.module(x), oth.module(x)
        a, b = (list(a.values()), list(b.values())) if ref.dict_output else ([a], [b])
        out[ref.name] = max(float((u - v).abs().max() / u.abs().max().clamp_min(1e-12)) for u, v in zip(a, b))
    return out
