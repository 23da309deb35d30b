"""CPU runtimes for the Estimator's networks: eager PyTorch (the reference), bfloat16, ONNX Runtime float32 or
ONNX Runtime with int8 convolutions.

`EstimatorConfig.runtime`:
- `eager`: every network runs in PyTorch, float32, as built; the reference the others are tested against.
- `bf16`: the dense parts (`estimator_parts`: Mask R-CNN's backbone + FPN, RPN head, box head and mask
  head; the pose network's image backbone, ResNet-18 stem..layer2 in the lite model, DINOv2 ViT-S/14 in the
  paper one) run under `torch.autocast` bfloat16 (oneDNN AMX / AVX512-BF16 kernels) and hand float32 to the
  rest. Only where the CPU has native bfloat16 (`bf16_supported`); elsewhere it is emulated, slower.
- `onnx`: the point classifier, Mask R-CNN's backbone + FPN, RPN, box and mask heads, the pose network's
  image backbone, PointNet++'s feature computation and its keypoint trunk (`estimator_parts`) run in ONNX
  Runtime, float32. Each part is read from its export next to the weights (`<weights stem>.<part>.onnx`,
  written by `cleanpose export`) when one made from the same weights file is there, else exported in memory
  when the Estimator is built (about a second per part; cached per process and weights file).
- `int8`: `onnx`, with the convolutional parts statically quantised to int8 (quantize.py: Mask R-CNN's FPN,
  last backbone stages, RPN and mask heads; the lite pose network's ResNet image backbone) and, in the paper
  configuration, DINOv2's and the keypoint trunk's MatMuls dynamically quantised. The static ones are read
  from `<weights stem>.<part>.int8.onnx`, which `cleanpose export` writes after calibrating on 16 synthetic
  frames (the shipped weights' ship in models/); without that file a part runs float32 (logged).
- `auto` (default): `int8` when onnxruntime is installed (it is in the default install), else `bf16` where the
  CPU has native bfloat16, else `eager`. A CUDA device always runs `eager` (no GPU was lent for issue 21).

Why: the keypoint trunk (`CleanPose.keypoint_trunk`: keypoint detector, aggregation, front door, NOCS and
pose heads) is many small matmuls, attentions and gathers: PyTorch pays its per-operator overhead on each,
ONNX Runtime fuses them (39.5 -> 17.9 ms for 3 objects on 2 cores of an AMD EPYC); int8 convolutions with
AVX512-VNNI run 3x faster than float32 ones. What stays float32 PyTorch in every runtime: the proposal logic
(anchors, NMS, RoIAlign, box decoding, mask pasting), the box and mask predictors (one layer each),
PointNet++'s index computations (furthest-point sampling, ball queries, 3-NN) and the confounder queue's
sampler (its draws are an input of the trunk's graph, so seeding behaves as in eager). Measured on 2 cores of
an AMD EPYC with AVX512-BF16 and VNNI, no AMX, 3 objects, eager and default interleaved in one run
(`bench/bench_estimator.py --baseline`): 191.7 -> 110.7 ms per frame (bf16 gained nothing there: 164 -> 159
ms); on a Xeon with AMX bf16 took the frame from ~115 to ~105 ms. torch.compile of PointNet++ was slower
than eager (graph breaks).

Tolerances (test/inference/test_runtime.py): ONNX float32 parts within 1e-4 of eager relative to their
largest output; bf16 and int8 parts within 5e-2; accuracy on the seed-7 validation split (IoU25 and 10deg5cm
within 1 point of eager) in docs/results/runtime_s7.json. The paper configuration's int8 MatMuls were not
checked for accuracy (no trained paper model here).
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from cleanpose_core.config import ConfigError
from cleanpose_core.device import bf16_supported
from cleanpose_core.io.artefacts import WeightsError
from cleanpose_core.inference.quantize import (CALIBRATION, calibration_inputs, quantize_int8,
                                               quantize_matmuls_int8)
from cleanpose_core.io.onnx_artefacts import (
    check_onnx_metadata,
    onnx_artefact_path,
    onnx_metadata,
    write_onnx_artefact,
)
from cleanpose_core.inference.runtime_parts import (  # noqa: F401  (estimator_parts, pose_model_parts: API)
    SHIPPED_POSE_MODEL_NAME,
    Part,
    estimator_parts,
    pose_model_parts,
)

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "bf16", "onnx", "int8")
OPSET = 17
_SESSION_CACHE: dict[tuple, object] = {}  # (part, source sha256) -> InferenceSession of an in-memory export


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The runtime `runtime` means on `device` (`auto`: see the module docstring); ConfigError when `onnx` or
    `bf16` cannot run here."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    cpu = device.type == "cpu"
    if runtime in ("onnx", "int8") and not (cpu and onnx_runtime_available()):
        why = "onnxruntime is not installed (pip install 'cleanpose[onnx]')" if cpu else "CPU only"
        raise ConfigError(f"runtime {runtime}: {why}; use runtime eager")
    if runtime == "bf16" and not (cpu and bf16_supported()):
        raise ConfigError(
            "runtime bf16: needs a CPU with native bfloat16 (AVX512-BF16 or AMX), CPU only; use runtime eager"
        )
    if runtime == "auto":
        if not cpu:
            return "eager"
        if onnx_runtime_available():
            return "int8"
        return "bf16" if bf16_supported() else "eager"
    return runtime


# ---------------------------------------------------------------------------------------------------------
# Export and sessions


class _TupleOutput(nn.Module):
    """Exports a module that returns a dict of tensors as one returning their tuple."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *xs):
        out = self.inner(*xs)
        return tuple(out.values()) if isinstance(out, dict) else out


def export_bytes(part: Part) -> bytes:
    """The part as an ONNX model (float32, opset `OPSET`), from the eval-mode module on the CPU."""
    module = _TupleOutput(part.reference).eval()
    # An input given as None (the queue draws of a network without the causal module) is not a graph input.
    names = [n for n, x in zip(part.input_names, part.example) if x is not None]
    args = tuple(part.example)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        with torch.no_grad():
            outputs = module(*args)
        n_out = len(outputs) if isinstance(outputs, tuple) else 1
        out_names = [f"y{i}" for i in range(n_out)]
        axes = {**{n: axes for n, axes in (part.dynamic or {}).items() if n in names},
                **{n: {0: "batch"} for n in out_names}}
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes cover
            torch.onnx.export(
                module,
                args,
                buffer,
                input_names=names,
                output_names=out_names,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
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


def load_session(part: Part, threads: int, int8: bool = False,
                 calibration: Callable[[], dict] | None = None):
    """An InferenceSession of `part`, float32 or (`int8`) its int8 version `<part>.int8` (quantize.py): its
    export file when it is there and made from the same weights, else made in memory (cached per process for a
    weights file). A statically quantised part is made in memory only with `calibration` (a callable giving
    {part name: calibration inputs}; `cleanpose export`); without it and without a file, LookupError."""
    name = f"{part.name}.int8" if int8 else part.name
    expected = onnx_metadata(name, part.source)
    if part.source is not None:
        path = onnx_artefact_path(part.source, name)
        if path.is_file():
            try:
                session = _session(str(path), threads)
                check_onnx_metadata(session.get_modelmeta().custom_metadata_map, path, expected)
                log.info("runtime onnx: %s from %s", name, path)
                return session
            except WeightsError as exc:
                log.warning("%s; not using it for %s", exc, name)
            except Exception as exc:  # an unreadable file: say so, and still run
                log.warning("%s: cannot load (%s); not using it for %s", path, exc, name)
    key = (name, expected["source_sha256"], threads)
    if part.source is not None and key in _SESSION_CACHE:
        return _SESSION_CACHE[key]
    if int8 and part.quantize and calibration is None:
        raise LookupError(f"no int8 export of {part.name} beside its weights (`cleanpose export` writes one)")
    session = _session(part_bytes(part, int8, calibration), threads)
    if part.source is not None:
        _SESSION_CACHE[key] = session
    return session


def part_bytes(part: Part, int8: bool = False, calibration: Callable[[], dict] | None = None) -> bytes:
    """The part's ONNX model: float32, or its int8 version (static, calibrated on `calibration()[part.name]`,
    or dynamic int8 MatMuls)."""
    model = export_bytes(part)
    if not int8:
        return model
    if part.quantize:
        if calibration is None:
            raise ValueError(f"{part.name}: static int8 needs calibration inputs")
        names = [n for n, x in zip(part.input_names, part.example) if x is not None]
        return quantize_int8(model, names, calibration()[part.name],
                             None if part.quantize is True else part.quantize)
    return quantize_matmuls_int8(model)


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
    """A module whose forward runs an ONNX Runtime session (CPU tensors in and out, float32 and int64).

    Its arguments are the part's inputs in order (`input_names`); those the graph does not take (a None
    input at export) are dropped. Returns the one output, a dict of them (`dict_keys`), or their tuple.
    """

    def __init__(self, session, dict_keys: list[str] | None, input_names: tuple[str, ...] = ("x",)):
        super().__init__()
        self.session, self.dict_keys, self.input_names = session, dict_keys, input_names
        self.graph_inputs = {i.name for i in session.get_inputs()}

    def forward(self, *xs):
        feed = {
            name: x.detach().contiguous().cpu().numpy() if x.dtype == torch.long
            else x.detach().float().contiguous().cpu().numpy()
            for name, x in zip(self.input_names, xs)
            if name in self.graph_inputs
        }
        out = [torch.from_numpy(y) for y in self.session.run(None, feed)]
        if self.dict_keys is not None:
            return OrderedDict(zip(self.dict_keys, out))
        return out[0] if len(out) == 1 else tuple(out)


def apply_runtime(estimator, runtime: str) -> str:
    """Switch the Estimator's dense parts to `runtime` (`auto` resolved first); returns the runtime used."""
    parts = estimator_parts(estimator)
    runtime = resolve_runtime(runtime, estimator.torch_device)
    apply_parts(parts, runtime)
    return runtime


def int8_calibration(estimator, parts: list[Part]) -> Callable[[], dict]:
    """A callable that, on its first call, runs the calibration frames through the (still eager) Estimator
    and returns {part name: inputs} of its `quantize` parts; later calls return the same."""
    modules = {p.name: p.module for p in parts if p.quantize}
    return functools.cache(lambda: calibration_inputs(estimator, modules))


def apply_parts(parts: list[Part], runtime: str) -> None:
    """Swap each part for its `runtime` version (a resolved runtime: eager, bf16, onnx or int8).

    Under int8 a statically quantised part needs its int8 export (calibration is an export step: it runs 16
    frames through the networks, about 10 s, which a node should not pay at every start); without one it runs
    float32, logged. Dynamically quantised parts need no calibration and are made in memory when missing."""
    if runtime == "eager":
        return
    threads = torch.get_num_threads()
    swaps = []
    for part in parts:
        if runtime in ("onnx", "int8"):
            session = None
            if runtime == "int8" and part.int8:
                try:
                    session = load_session(part, threads, True)
                except LookupError as exc:
                    log.warning("runtime int8: %s runs float32: %s", part.name, exc)
            session = session or load_session(part, threads)
            module = OrtModule(session, part.dict_keys, part.input_names)
            swaps.append((part, part.call(module) if part.call else module))
        elif part.bf16:  # runtime bf16
            swaps.append((part, Bf16Module(part.module)))
    for part, module in swaps:
        setattr(part.owner, part.attr, module)


def export_estimator(estimator, int8: bool = True) -> list[Path]:
    """Write every part of an (eager) Estimator next to its weights file, and with `int8` the int8 versions
    of its int8 parts (calibrating the static ones on the synthetic frames); returns the files written."""
    parts = estimator_parts(estimator)
    calibration = int8_calibration(estimator, parts) if int8 else None
    written = []
    for part in parts:
        if part.source is None:
            raise ValueError(f"{part.name}: random weights have no file to export next to")
        for quantized in (False, True) if part.int8 and int8 else (False,):
            name = f"{part.name}.int8" if quantized else part.name
            try:
                model = part_bytes(part, quantized, calibration)
            except ValueError as exc:  # no calibration frame reached the part
                if not quantized:
                    raise
                log.warning("%s: no int8 export (%s)", part.name, exc)
                continue
            metadata = onnx_metadata(name, part.source)
            if quantized:
                metadata["quantization"] = f"static, {CALIBRATION}" if part.quantize else "dynamic MatMuls"
            written.append(write_onnx_artefact(model, onnx_artefact_path(part.source, name), metadata))
    return written


def part_differences(reference, other, seed: int = 0) -> dict[str, float]:
    """{part: max |difference| / max |reference|} of the two Estimators' parts on the same random input (eager
    reference against e.g. the onnx runtime)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for ref, oth in zip(estimator_parts(reference), estimator_parts(other)):
        # Random floats in the example's shapes; integer inputs (category ids) and None as in the example.
        xs = tuple(torch.rand(x.shape, generator=generator) if x is not None and x.is_floating_point() else x
                   for x in ref.example)
        with torch.no_grad():
            a = ref.reference(*xs)
            b = (oth.module.inner if oth.call else oth.module)(*xs)
        if ref.dict_keys is not None:
            a, b = list(a.values()), list(b.values())
        else:
            a, b = (list(a), list(b)) if isinstance(a, tuple) else ([a], [b])
        out[ref.name] = max(float((u - v).abs().max() / u.abs().max().clamp_min(1e-12)) for u, v in zip(a, b))
    return out
