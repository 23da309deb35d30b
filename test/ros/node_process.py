"""Start the pose node as a separate process for the ROS tests (it talks to the test over real DDS)."""

import os
import subprocess
import sys

# REAL275 camera matrix, row-major, as a CameraInfo.k
K = [591.0125, 0.0, 322.525, 0.0, 590.16775, 244.11084, 0.0, 0.0, 1.0]


def start_node(namespace, *params, log_path):
    """`python -m cleanpose_ros.pose_node` in `namespace` with `-p` parameters; output goes to `log_path`."""
    args = [sys.executable, "-m", "cleanpose_ros.pose_node", "--ros-args", "-r", f"__ns:={namespace}"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
