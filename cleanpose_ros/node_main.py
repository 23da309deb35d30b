"""The one `main()` body of every node executable: init, build, spin, shut down cleanly.

Configuration errors raised while building the node (bad parameters, missing weight files) end the process
with exit code 2 and a one-line message naming the problem, instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from cleanpose_core.io import WeightsError


def run_node(make_node: Callable[[], Node], make_executor: Callable[[], Executor] = SingleThreadedExecutor,
             args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = make_node()
        except (ValueError, OSError, WeightsError) as exc:
            print(f"[{getattr(make_node, '__name__', 'node')}] configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT/SIGTERM shut the context down from rclpy's signal handler; an executor caught between its
        # checks then fails to build its wait set (RCLError). That is a normal stop, anything else is not.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
