"""pose_node: RGB + registered depth + camera_info in; Detection3DArray, TF, markers, debug image out.

The work is in `engine.PoseEngine` (shared with the managed variant, `managed_pose_node`); this node declares
the parameters, builds the engine, and wires the service, the once-a-second health report and run-time
parameter changes. Every torch call runs on the engine's worker thread (see worker.py); OpenMP threads sleep
while idle (see openmp_policy).
"""

from __future__ import annotations

import cleanpose_ros.openmp_policy  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from cleanpose_ros.engine import PoseEngine
from cleanpose_ros.health import diagnostics, warn_if_silent
from cleanpose_ros.node_main import run_node
from cleanpose_ros.outputs import OUTPUT_QOS
from cleanpose_ros.parameters import declare_and_read, watch_changes
from cleanpose_ros.srv import EstimatePoses


def start_reporting(node: Node, engine: PoseEngine):
    """The ~/estimate service, /diagnostics and the silent-input warning, once a second."""
    publisher = node.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)

    def report() -> None:
        try:
            warn_if_silent(engine)
            publisher.publish(diagnostics(engine, node.get_clock().now().to_msg()))
        except Exception as exc:  # health reporting must never take the node down
            node.get_logger().error(f"diagnostics failed: {type(exc).__name__}: {exc}")

    service = node.create_service(EstimatePoses, "~/estimate", engine.on_estimate,
                                  callback_group=MutuallyExclusiveCallbackGroup())
    timer = node.create_timer(1.0, report, callback_group=MutuallyExclusiveCallbackGroup())
    return publisher, service, timer


def ready_message(node: Node, engine: PoseEngine) -> str:
    p = engine.params
    topics = ", ".join(node.resolve_topic_name(t) for t in ("rgb/image", "depth/image", "rgb/camera_info"))
    camera = "the camera frame"
    frames = f"; tracking in {p.tracking_frame or camera}, output in {p.target_frame or camera}"
    return (f"ready on {engine.device} (segmentation: {p.segmentation_backend}, sync: {engine.inputs.backend}"
            f"{frames}); waiting for {topics}")


class PoseNode(Node):
    def __init__(self, **kwargs):
        super().__init__("pose_node", **kwargs)
        self.engine = PoseEngine(self, declare_and_read(self))
        watch_changes(self, lambda: self.engine.params, self.engine.apply)
        self.engine.open_outputs()
        self.engine.open_inputs(ReentrantCallbackGroup())
        start_reporting(self, self.engine)
        self.get_logger().info(ready_message(self, self.engine))

    @property
    def params(self):
        return self.engine.params

    def destroy_node(self):
        # absent when __init__ failed (rclpy.shutdown calls this)
        if getattr(self, "engine", None) is not None:
            self.engine.shutdown()
        return super().destroy_node()


def main(args=None) -> None:
    # A single-threaded executor: the callbacks are cheap (the worker thread does the estimation) and rclpy's
    # MultiThreadedExecutor only adds threads competing for the cores. The callback groups still let the node
    # run under a multi-threaded executor of a host process.
    run_node(PoseNode, SingleThreadedExecutor, args=args)


if __name__ == "__main__":
    main()
