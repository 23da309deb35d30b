"""Launch files, camera recipes, RViz config and package.xml: always contract-checked (no launch_ros needed);
the launch files are also loaded for real where launch_ros is installed."""

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
FILES = sorted(LAUNCH.glob("*.launch.py"))
CAMERAS_DIR = ROOT / "config" / "cameras"
TOPIC_KEYS = ("rgb_topic", "depth_topic", "camera_info_topic")

# Python import -> rosdep key (each verified in ros/rosdistro rosdep/python.yaml).
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "scipy": "python3-scipy", "cv2": "python3-opencv", "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm", "PIL": "python3-pil",
    "imageio": "python3-imageio", "torch": "python3-torch", "torchvision": "python3-torchvision",
}
# Imports without an apt-backed rosdep key: the pip step installs them; package.xml must say so in a comment.
PIP_ONLY = {"timm", "trimesh", "open3d", "rich", "huggingface_hub", "rosbags", "fpsample", "pointnet2_ops",
            "onnx", "onnxruntime", "numba"}
LOCAL = {"cleanpose_core", "cleanpose_ros"}
# Needed by something other than an import or a launch file's package="...": the generated interfaces.
NOT_IMPORTED = {"rosidl_default_runtime"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(path: Path) -> set[str]:
    tree = _tree(path)
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    return names


def _declared_arguments(path: Path) -> set[str]:
    return {n.args[0].value for n in ast.walk(_tree(path))
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "DeclareLaunchArgument"
            and n.args and isinstance(n.args[0], ast.Constant)}


def _keyword_strings(path: Path, keyword: str) -> set[str]:
    return {k.value.value for n in ast.walk(_tree(path)) if isinstance(n, ast.Call) for k in n.keywords
            if k.arg == keyword and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)}


def _cameras() -> tuple[str, ...]:
    for node in _tree(LAUNCH / "pose.launch.py").body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CAMERAS":
            return ast.literal_eval(node.value)
    raise AssertionError("pose.launch.py has no CAMERAS table")


def test_both_launch_files_exist():
    assert {f.name for f in FILES} == {"pose.launch.py", "demo.launch.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_launch_file_defines_generate_launch_description_and_no_subprocesses(path):
    names = {n.name for n in _tree(path).body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    assert not _imports(path) & {"subprocess", "os"}, "launch files declare and remap; they do not compute"


def test_pose_launch_declares_the_arguments():
    declared = _declared_arguments(LAUNCH / "pose.launch.py")
    assert {"namespace", "camera", *TOPIC_KEYS, "images_rectified", "target_frame", "tracking_frame",
            "params_file", "device", "managed", "autostart", "rviz"} <= declared


def test_pose_launch_runs_both_executables_and_cmake_installs_them():
    executables = _keyword_strings(LAUNCH / "pose.launch.py", "executable")
    assert {"pose_node", "managed_pose_node", "rviz2"} <= executables
    cmake = (ROOT / "CMakeLists.txt").read_text()
    programs = re.search(r"install\(PROGRAMS([^)]*)\)", cmake).group(1).split()
    for name in _keyword_strings(LAUNCH / "pose.launch.py", "executable") | \
            _keyword_strings(LAUNCH / "demo.launch.py", "executable"):
        if name == "rviz2":
            continue
        script = ROOT / "scripts" / name
        assert f"scripts/{name}" in programs, f"CMakeLists.txt does not install {name}"
        assert script.is_file() and script.stat().st_mode & 0o111, f"{script} is missing or not executable"
        assert f"from cleanpose_ros.{name} import main" in script.read_text()


def test_demo_uses_the_synthetic_recipe_and_tracks_in_world():
    demo = (LAUNCH / "demo.launch.py").read_text()
    assert '"camera": "synthetic"' in demo
    assert "tracking_frame" in _declared_arguments(LAUNCH / "demo.launch.py")
    assert re.search(r'DeclareLaunchArgument\("tracking_frame", default_value="world"', demo)


@pytest.mark.parametrize("camera", _cameras())
def test_camera_recipe_names_three_topics(camera):
    recipe = yaml.safe_load((CAMERAS_DIR / f"{camera}.yaml").read_text())
    assert set(recipe) == {*TOPIC_KEYS, "images_rectified", "optical_frame"}, camera
    for key in TOPIC_KEYS:
        assert isinstance(recipe[key], str) and recipe[key] and " " not in recipe[key], (camera, key)
    assert len({recipe[key] for key in TOPIC_KEYS}) == 3, camera
    assert isinstance(recipe["images_rectified"], bool), camera
    assert isinstance(recipe["optical_frame"], str), camera


def test_every_recipe_file_is_offered():
    assert {p.stem for p in CAMERAS_DIR.glob("*.yaml")} == set(_cameras())


def test_recipes_for_real_drivers_use_their_published_names():
    def topics(camera):
        recipe = yaml.safe_load((CAMERAS_DIR / f"{camera}.yaml").read_text())
        return [recipe[key] for key in TOPIC_KEYS]

    assert all(t.startswith("/camera/camera/") for t in topics("realsense"))  # realsense-ros 4.x
    assert topics("azure_kinect") == ["/rgb/image_raw", "/depth_to_rgb/image_raw", "/rgb/camera_info"]
    assert all(t.startswith("/oak/") for t in topics("oakd"))
    assert all(t.startswith("/zed/zed_node/") for t in topics("zed"))
    assert yaml.safe_load((CAMERAS_DIR / "zed.yaml").read_text())["images_rectified"] is True


def test_rviz_config_follows_the_namespace():
    text = (ROOT / "config" / "cleanpose.rviz").read_text()
    assert "/cleanpose/" not in text
    config = yaml.safe_load(text)
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert topics and all(t.startswith("pose_node/") for t in topics), topics


# --- package.xml --------------------------------------------------------------------------------------------

def _package():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg is not installed")
    return catkin_pkg.parse_package(ROOT / "package.xml")


def _code_imports() -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it (cleanpose_ros/, cleanpose_core/, launch/)."""
    files = [*(ROOT / "cleanpose_ros").rglob("*.py"), *(ROOT / "cleanpose_core").rglob("*.py"), *FILES]
    found: dict[str, set[str]] = {}
    for path in files:
        for name in _imports(path) - set(sys.stdlib_module_names) - LOCAL:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _runtime_keys(package) -> set[str]:
    deps = package.exec_depends + package.build_export_depends + package.build_depends
    return {d.name for d in deps}


def test_package_xml_parses_and_has_no_unused_std_srvs():
    package = _package()
    assert package.name == "cleanpose_ros"
    package.validate()
    assert "std_srvs" not in _runtime_keys(package)


def test_package_xml_declares_every_import():
    keys = _runtime_keys(_package())
    xml = (ROOT / "package.xml").read_text()
    missing = {}
    for module, files in _code_imports().items():
        if module in PIP_ONLY:
            assert module in xml, f"package.xml does not say that {module} comes from the pip step"
            continue
        key = ROSDEP_KEYS.get(module, module)  # a ROS package's Python module has the package's name
        if key not in keys:
            missing[module] = sorted(files)[:3]
    assert not missing, f"imported but not declared in package.xml: {missing}"


def test_package_xml_declares_nothing_unused():
    used = set(_code_imports())
    used |= {ROSDEP_KEYS[m] for m in used if m in ROSDEP_KEYS}
    for path in FILES:  # packages the launch files start, e.g. rviz2
        used |= _keyword_strings(path, "package")
    for path in [*(ROOT / "msg").glob("*.msg"), *(ROOT / "srv").glob("*.srv")]:
        used |= set(re.findall(r"^\s*([a-z0-9_]+)/[A-Z]", path.read_text(), flags=re.M))
    unused = _runtime_keys(_package()) - used - NOT_IMPORTED - {"cleanpose_ros"}
    assert not unused, f"declared in package.xml but not used: {sorted(unused)}"


# --- with launch_ros: load the files and expand the node actions --------------------------------------------

def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_launch_file_loads_with_launch_ros(path):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (PyPI ROS wheels lack it)")
    from launch import LaunchDescription

    description = _load(path).generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert description.get_launch_arguments()


@pytest.mark.parametrize("managed", ["false", "true"])
@pytest.mark.parametrize("camera", _cameras())
def test_pose_launch_expands_per_camera(camera, managed):
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (PyPI ROS wheels lack it)")
    pytest.importorskip("ament_index_python")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch import LaunchContext
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch_ros.actions import LifecycleNode, Node

    try:
        get_package_share_directory("cleanpose_ros")
    except PackageNotFoundError:
        pytest.skip("cleanpose_ros is not installed in the ament index")
    module = _load(LAUNCH / "pose.launch.py")
    context = LaunchContext()
    for argument in module.generate_launch_description().get_launch_arguments():
        context.launch_configurations[argument.name] = (
            "".join(s.perform(context) for s in argument.default_value) if argument.default_value else "")
    context.launch_configurations.update(camera=camera, managed=managed, rviz="true",
                                         target_frame="base_link")
    actions = module._pose_node(context)
    nodes = [a for a in actions if isinstance(a, Node)]
    pose = [n for n in nodes if n.node_package == "cleanpose_ros"]
    assert len(pose) == 1
    if managed == "true":
        assert isinstance(pose[0], LifecycleNode) and pose[0].node_executable == "managed_pose_node"
        assert any(isinstance(a, EmitEvent) for a in actions)
        assert any(isinstance(a, RegisterEventHandler) for a in actions)
    else:
        assert not isinstance(pose[0], LifecycleNode) and pose[0].node_executable == "pose_node"
    assert [n.node_package for n in nodes if n is not pose[0]] == ["rviz2"]
