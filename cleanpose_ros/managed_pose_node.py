"""managed_pose_node: the pose node as a ROS 2 managed (lifecycle) node, for systems that bring nodes up in
order.

- configure: declare-and-validate parameters, load the models (the slow part), create the publishers;
- activate: subscribe to the camera, offer ~/estimate, report on /diagnostics;
- deactivate: unsubscribe (models stay loaded); cleanup: release the models; shutdown: both.
A failing configure (bad parameter, missing weights) returns FAILURE with the reason in the log, and the node
stays unconfigured, as the lifecycle design asks. Parameters are declared at construction so that `ros2 param`
works in every state.
"""

from __future__ import annotations

import cleanpose_ros.openmp_policy  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from cleanpose_core.io import WeightsError
from cleanpose_ros.engine import PoseEngine
from cleanpose_ros.node_main import run_node
from cleanpose_ros.parameters import declare_and_read, watch_changes
from cleanpose_ros.pose_node import ready_message, start_reporting


class ManagedPoseNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("pose_node", **kwargs)
        self.params = declare_and_read(self)  # invalid parameters stop the process (exit 2) before any state
        self.engine: PoseEngine | None = None
        self._reporting = ()
        watch_changes(self, lambda: self.params, self._apply)

    def _apply(self, params) -> None:
        if self.engine is not None:
            self.engine.apply(params)
        self.params = params

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.engine = PoseEngine(self, self.params)
        except (ValueError, OSError, WeightsError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.engine.open_outputs()
        self.get_logger().info(f"configured: models loaded on {self.engine.device}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.engine.open_inputs(ReentrantCallbackGroup())
        self._reporting = start_reporting(self, self.engine)
        self.get_logger().info(ready_message(self, self.engine))
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.engine.close_inputs()
        publisher, service, timer = self._reporting
        self.destroy_timer(timer)
        self.destroy_service(service)
        self.destroy_publisher(publisher)
        self._reporting = ()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._reporting:
            self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    def destroy_node(self):
        if getattr(self, "engine", None) is not None:
            self.engine.shutdown()
        return super().destroy_node()


def main(args=None) -> None:
    run_node(ManagedPoseNode, SingleThreadedExecutor, args=args)


if __name__ == "__main__":
    main()
