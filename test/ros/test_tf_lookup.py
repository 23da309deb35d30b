"""The /tf fallback listener's lookups (no DDS needed: messages go straight into its store)."""

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from scipy.spatial.transform import Rotation

from cleanpose_ros.tf_lookup import TfCache, transform_to_matrix


class _Node:  # only what TfCache's constructor uses: it subscribes; the test feeds messages itself
    def create_subscription(self, *args, **kwargs):
        return None

    def get_logger(self):
        raise AssertionError("no warning expected")


def tf(parent, child, sec, xyz, yaw_deg=0.0):
    from tf2_msgs.msg import TFMessage

    t = TransformStamped()
    t.header.frame_id, t.child_frame_id = parent, child
    t.header.stamp.sec = sec
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = xyz
    q = Rotation.from_euler("z", yaw_deg, degrees=True).as_quat()
    t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = q
    return TFMessage(transforms=[t])


def test_chains_interpolates_and_accepts_out_of_order_samples():
    cache = TfCache(_Node())
    cache._on_tf(tf("odom", "base", 10, (0, 0, 0)), False)
    cache._on_tf(tf("odom", "base", 12, (2, 0, 0), 90.0), False)
    cache._on_tf(tf("odom", "base", 11, (1, 0, 0), 45.0), False)  # late: stored in order, no error
    cache._on_tf(tf("base", "camera", 0, (0, 0, 1)), True)  # static
    T = cache.lookup("odom", "camera", int(11.5e9))
    np.testing.assert_allclose(T[:3, 3], [1.5, 0, 1], atol=1e-9)
    np.testing.assert_allclose(
        Rotation.from_matrix(T[:3, :3]).as_euler("zyx", degrees=True)[0], 67.5, atol=1e-6
    )
    np.testing.assert_allclose(cache.lookup("camera", "odom", int(11.5e9)) @ T, np.eye(4), atol=1e-9)
    assert cache.lookup("odom", "camera", int(20e9)) is None  # far past the newest sample
    assert cache.lookup("map", "camera", int(11e9)) is None  # no connection


def test_transform_to_matrix_is_rotation_then_translation():
    msg = tf("a", "b", 0, (1, 2, 3), 90.0).transforms[0]
    T = transform_to_matrix(msg.transform)
    assert T[:3, :3] @ [1, 0, 0] == pytest.approx([0, 1, 0])
    assert T[:3, 3] == pytest.approx([1, 2, 3])
