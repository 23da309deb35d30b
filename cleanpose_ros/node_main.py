"""The one `main()` body of every node executable: init, build, spin, shut down cleanly.

Configuration errors raised while building the node (bad parameters, missing weight files) end the process with
exit code 2 and a one-line message naming the problem, instead of a traceback.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from cleanpose_core.models.weights import WeightsError


def run_node(make_node: Callable[[], Node], make_executor: Callable[[], Executor] = SingleThreadedExecutor,
             args: list[str] | None = None, foreground: Callable[[Node], None] | None = None) -> None:
    """foreground: a loop of the node's own to run in the main thread (it must return once ROS shuts down);
    the executor then spins in a second thread."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = make_node()
        except (ValueError, OSError, WeightsError) as exc:
            name = getattr(getattr(make_node, "func", make_node), "__name__", "node")  # a class or a partial of one
            print(f"[{name}] configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        executor = make_executor()
        executor.add_node(node)
        if foreground is None:
            executor.spin()
        else:
            threading.Thread(target=_spin_until_shutdown, args=(executor,), name="ros_callbacks", daemon=True).start()
            foreground(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _spin_until_shutdown(executor: Executor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
