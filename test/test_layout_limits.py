"""Size limits that keep the layout readable (issue 20): small core modules, a thin node entry point."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE_MODULE_MAX_LINES = 450
POSE_NODE_MAX_LINES = 250


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_core_module_over_the_limit():
    too_long = {str(p.relative_to(REPO)): line_count(p) for p in (REPO / "cleanpose_core").rglob("*.py")
                if line_count(p) > CORE_MODULE_MAX_LINES}
    assert not too_long, f"split these modules (limit {CORE_MODULE_MAX_LINES} lines): {too_long}"


def test_pose_node_stays_thin():
    assert line_count(REPO / "cleanpose_ros" / "pose_node.py") <= POSE_NODE_MAX_LINES
