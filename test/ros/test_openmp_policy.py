"""The node processes load torch with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy
(openmp_policy)."""

import os
import subprocess
import sys

import pytest

# Reports the policy in the environment at the moment torch is first imported (libgomp reads it then).
PROBE = """
import os, sys
class FirstTorchImport:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("policy when torch loaded:", os.environ.get("OMP_WAIT_POLICY"))
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, FirstTorchImport())
import cleanpose_ros.pose_node
"""


@pytest.mark.parametrize("user_value, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_pose_node_sets_wait_policy_before_torch_loads(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value:
        env["OMP_WAIT_POLICY"] = user_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"policy when torch loaded: {expected}" in out.stdout
