"""Dependencies point one way (STYLE.md §1, issue 20): who may import whom, checked on the source with `ast`.

- `geometry` and `ops` import nothing of the project;
- `io` (artefacts, checkpoints) imports nothing of the project either, so that `models` can read its weight
  files through it; `io.pose_model` builds a network and so sits above `models`;
- `models` imports only `geometry`, `ops` and `io`;
- nothing but `train` imports `train` (running a model must not need the training package);
- `cleanpose_ros` imports only `inference`, `data.synthetic` and `io`;
- no module imports itself back through others.

Every import counts: module-level ones, those inside functions (they run too, just later), and modules named
in string constants (`cleanpose_core/cli.py` imports its commands by name). Code that breaks a rule today is
listed in `EXCEPTIONS` with the reason it is allowed, so any new violation fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cleanpose_core", "cleanpose_ros")

# Layer -> the other layers it may import. Layers not listed here are only bound by the `train` rule.
MAY_IMPORT: dict[str, set[str]] = {
    "geometry": set(),
    "ops": set(),
    "io": set(),
    "io.pose_model": {"io", "config", "models"},
    "models": {"geometry", "ops", "io"},
    "cleanpose_ros": {"inference", "data.synthetic", "io"},
}
ONLY_IMPORTED_BY_ITSELF = ("train",)

# (importing module, imported layer): why it is allowed. Existing code, not to be copied.
EXCEPTIONS: dict[tuple[str, str], str] = {
    (
        "cleanpose_core.cli",
        "train",
    ): "the one command line registers every sub-command by module name, `cleanpose train` among them",
    (
        "cleanpose_core.models.cli",
        "config",
    ): "the `cleanpose model-info` command reads a model YAML; a command wires blocks, it is not one",
    (
        "cleanpose_ros.camera_model",
        "geometry",
    ): "CameraInfo K/D become `Intrinsics` and the OpenCV undistortion maps of `geometry.distortion`",
    (
        "cleanpose_ros.outputs",
        "geometry",
    ): "the debug image is drawn with the frame's `Intrinsics`, which travel with the estimate",
    ("cleanpose_ros.markers", "geometry"): "RViz box markers are drawn from `box_corners` / `BOX_EDGES`",
    (
        "cleanpose_ros.demo",
        "geometry",
    ): "the demo scores its detections against the simulated ground truth (`rotation_error_deg`)",
    (
        "cleanpose_ros.parameters",
        "device",
    ): "the `device` ROS parameter is checked with `check_device_name` when declared, before a model loads",
    (
        "cleanpose_ros.synthetic_camera",
        "cleanpose_core",
    ): "its ground-truth detections carry NOCS category ids and symmetry (`NOCS_CATEGORIES`, "
    "`NOCS_SYMMETRIC`: the package's category tables)",
    (
        "cleanpose_ros.synthetic_camera",
        "config",
    ): "the simulated camera reads the synthetic-scene YAML (`load_yaml(SynthConfig, ...)`)",
    (
        "cleanpose_ros.synthetic_camera",
        "geometry",
    ): "the simulated camera has intrinsics and, optionally, a distorted lens (`geometry.distortion`)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def layer(module: str) -> str:
    """The part of the project a module belongs to: `cleanpose_ros`, the package root, or its sub-package
    (`data.synthetic` and `io.pose_model` apart from the rest of `data` and `io`)."""
    parts = module.split(".")
    if parts[0] == "cleanpose_ros" or len(parts) == 1:
        return parts[0]
    if parts[1:3] in (["data", "synthetic"], ["io", "pose_model"]):
        return ".".join(parts[1:3])
    return parts[1]


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """`name` if it is a module of the project, else its longest prefix that is one (an attribute import)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(source: str, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """Every project module `module` imports: import statements anywhere, relative ones resolved, and string
    constants naming a module (imported by name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            # `from pkg import name` imports the module pkg.name when there is one, else pkg itself.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"cleanpose_(core|ros)(\.\w+)+", node.value) and node.value in modules:
                names = [node.value]
        found.update(m for m in (_known(n, modules) for n in names) if m and m != module)
    return found


GRAPH: dict[str, set[str]] = {
    m: imports_of(p.read_text(), m, p.name == "__init__.py", MODULES) for m, p in MODULES.items()}


def violations(graph: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(importer, imported module, imported layer) for every import that breaks a rule."""
    out = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = layer(src), layer(dst)
            if a == b:
                continue
            allowed = MAY_IMPORT.get(a)
            bad = (allowed is not None and b not in allowed) or (b in ONLY_IMPORTED_BY_ITSELF)
            if bad:
                out.append((src, dst, b))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_every_kind_of_import():
    # Guard against a checker that can never fail: relative, function-level and by-name imports all count.
    names = ("", ".train", ".train.checkpoint", ".models", ".models.x", ".geometry")
    modules = {f"cleanpose_core{n}": Path() for n in names}
    source = ("from ..train import checkpoint\n"
              "def f():\n    from cleanpose_core.geometry import rotations\n"
              "MODULES = ('cleanpose_core.train',)\n"
              "from . import NAME\n")
    found = imports_of(source, "cleanpose_core.models.x", False, modules)
    assert found == {"cleanpose_core.train.checkpoint", "cleanpose_core.geometry", "cleanpose_core.train",
                     "cleanpose_core.models"}
    graph = {"cleanpose_core.models.x": found}
    assert [(d, b) for _, d, b in violations(graph)] == [("cleanpose_core.train", "train"),
                                                         ("cleanpose_core.train.checkpoint", "train")]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("cleanpose_core.io.pose_model") == "io.pose_model" and layer("cleanpose_core.io") == "io"
    assert layer("cleanpose_core.data.synthetic.render") == "data.synthetic" and layer("cleanpose_core") == (
        "cleanpose_core")


def test_every_package_is_found():
    expected = {"cleanpose_core.io.artefacts", "cleanpose_core.train.trainer", "cleanpose_ros.engine"}
    assert expected <= set(GRAPH)


@pytest.mark.parametrize("rule", sorted(MAY_IMPORT) + list(ONLY_IMPORTED_BY_ITSELF))
def test_import_directions(rule):
    broken = [f"{src} imports {dst}" for src, dst, b in violations(GRAPH)
              if (layer(src) == rule or b == rule) and (src, b) not in EXCEPTIONS]
    assert not broken, (f"rule for `{rule}` broken (see this file's docstring; move the shared piece down a "
                        f"layer rather than adding an exception): {broken}")


def test_every_exception_is_still_needed():
    used = {(src, b) for src, _, b in violations(GRAPH)}
    stale = sorted(set(EXCEPTIONS) - used)
    assert not stale, f"these imports are gone: delete their entries from EXCEPTIONS: {stale}"


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, f"modules that import each other (directly or through others): {found}"
