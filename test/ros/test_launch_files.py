"""Launch files: always syntax- and contract-checked; loaded for real where launch_ros is installed."""

import ast
import importlib.util
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
FILES = sorted(LAUNCH.glob("*.launch.py"))


def test_both_launch_files_exist():
    assert {f.name for f in FILES} == {"pose.launch.py", "demo.launch.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_launch_file_defines_generate_launch_description_and_no_subprocesses(path):
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"subprocess", "os"}, "launch files declare and remap; they do not compute"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_launch_file_loads_with_launch_ros(path):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (PyPI ROS wheels lack it)")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert description.get_launch_arguments()
