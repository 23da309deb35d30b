"""cleanpose_core must stay free of ROS: the library is used by researchers without any ROS installation."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "cleanpose_core"
ROS_TOP_LEVEL = {
    "rclpy",
    "rcl_interfaces",
    "rosidl_runtime_py",
    "rosidl_parser",
    "ament_index_python",
    "launch",
    "launch_ros",
    "tf2_ros",
    "tf2_py",
    "message_filters",
    "cv_bridge",
    "image_geometry",
    "sensor_msgs_py",
    "builtin_interfaces",
    "cleanpose_ros",
}


def is_ros_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in ROS_TOP_LEVEL or top.endswith("_msgs") or top.endswith("_srvs")


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module name imported by a module: import statements and literal importlib/__import__ calls."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.append((node.lineno, node.args[0].value))
    return names


def test_detector_recognises_ros_imports():
    # Guard against a checker that can never fail.
    tree = ast.parse(
        "import rclpy\nfrom vision_msgs.msg import Detection3D\nimportlib.import_module('tf2_ros')\n"
    )
    assert [n for _, n in imported_names(tree) if is_ros_module(n)] == ["rclpy", "vision_msgs.msg", "tf2_ros"]
    assert not is_ros_module("numpy") and not is_ros_module("torch.nn")


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_no_ros(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    offending = [f"line {line}: {name}" for line, name in imported_names(tree) if is_ros_module(name)]
    assert not offending, f"{path} imports ROS: {offending}"
