"""Start the package's nodes as separate processes for the ROS tests (they talk to the test over real DDS)."""

import ctypes
import os
import signal
import subprocess
import sys

# REAL275 camera matrix, row-major, as a CameraInfo.k
K = [591.0125, 0.0, 322.525, 0.0, 590.16775, 244.11084, 0.0, 0.0, 1.0]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, however it dies (a killed or timed-out
    pytest runs no `finally`), so that no node is left running on the machine's two cores."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_process(module, namespace, *params, log_path, remaps=None):
    """`python -m <module>` in `namespace` with `-p` parameters and `-r` remaps; output goes to `log_path`."""
    args = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def start_node(namespace, *params, log_path):
    """The pose node (`cleanpose_ros.pose_node`)."""
    return start_process("cleanpose_ros.pose_node", namespace, *params, log_path=log_path)
