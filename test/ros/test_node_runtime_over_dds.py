"""The pose node as a robot runs it, through real rclpy and DDS: integer values for double parameters, exit 2
naming a bad parameter, `ros2 param set` semantics at run time (accepted, refused with a reason, read-only),
the managed (lifecycle) variant driven through its lifecycle services, and a clean start and stop on SIGINT
and SIGTERM (no warnings, no errors, exit 0)."""

import signal
import time

import pytest
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor

from node_process import start_process

pytestmark = pytest.mark.ros
FAST = ("pose_backend:=box_fit", "device:=cpu", "sync_warn_after:=60.0")


def call(node, executor, client, request, timeout=30.0):
    assert client.wait_for_service(timeout_sec=60), f"no service {client.srv_name}"
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert future.done(), f"{client.srv_name} did not answer"
    return future.result()


def double(name, value):
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def integer(name, value):
    return Parameter(
        name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    )


def test_bad_parameter_types_and_ranges_exit_2_naming_the_parameter(tmp_path):
    cases = {"max_objects:=2.5": "parameter max_objects", "score_threshold:=1.5": "parameter score_threshold",
             "score_threshold:=high": "parameter score_threshold must be a double"}
    procs = {
        arg: start_process("cleanpose_ros.pose_node", f"/cp_bad_{i}", arg, log_path=tmp_path / f"{i}.log")
        for i, arg in enumerate(cases)
    }
    for i, (arg, expected) in enumerate(cases.items()):
        assert procs[arg].wait(timeout=120) == 2, (tmp_path / f"{i}.log").read_text()
        log = (tmp_path / f"{i}.log").read_text()
        assert "configuration error" in log and expected in log and "Traceback" not in log, log


def test_integer_doubles_run_time_changes_and_clean_sigint(
    ros_context, unique_topic, segmenter_weights, tmp_path
):
    log_path = tmp_path / "pose.log"
    proc = start_process(
        "cleanpose_ros.pose_node",
        unique_topic,
        *FAST,
        f"segmentation_weights:={segmenter_weights}",
        "score_threshold:=1",
        "max_depth:=4",
        log_path=log_path,
    )  # integers for doubles
    node = rclpy.create_node("param_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    service = f"{unique_topic}/pose_node"
    set_client = node.create_client(SetParameters, f"{service}/set_parameters")
    get_client = node.create_client(GetParameters, f"{service}/get_parameters")
    try:
        got = call(node, executor, get_client, GetParameters.Request(names=["score_threshold", "max_depth"]))
        assert [v.integer_value for v in got.values] == [1, 4]  # accepted as given, used as 1.0 and 4.0
        results = call(
            node,
            executor,
            set_client,
            SetParameters.Request(
                parameters=[
                    double("score_threshold", 0.7),
                    integer("min_mask_area", 50),
                    double("category_weight", 0.2),
                    Parameter(
                        name="publish_debug_image",
                        value=ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=False),
                    ),
                    double("score_threshold", 2.0),
                    double("min_depth", 5.0),
                    Parameter(
                        name="device",
                        value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="cpu"),
                    ),
                    integer("track_max_distance", 1),
                ]
            ),
        ).results
        ok = [r.successful for r in results]
        assert ok == [True, True, True, True, False, False, False, True], [r.reason for r in results]
        assert "score_threshold out of range" in results[4].reason  # rclpy checks the descriptor range first
        assert "min_depth < max_depth" in results[5].reason
        assert "read-only" in results[6].reason
        got = call(
            node, executor, get_client, GetParameters.Request(names=["score_threshold", "min_mask_area"])
        )
        assert got.values[0].double_value == 0.7 and got.values[1].integer_value == 50
        assert proc.poll() is None
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
    log = log_path.read_text()
    assert "ready on cpu" in log
    for bad in ("WARN", "ERROR", "Traceback", "RCLError", "non-writable"):
        assert bad not in log, log


def test_managed_node_lifecycle_through_its_services_and_clean_sigterm(ros_context, unique_topic,
                                                                      segmenter_weights, tmp_path):
    log_path = tmp_path / "managed.log"
    proc = start_process("cleanpose_ros.managed_pose_node", unique_topic, *FAST,
                         f"segmentation_weights:={segmenter_weights}", log_path=log_path)
    node = rclpy.create_node("lifecycle_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    base = f"{unique_topic}/pose_node"
    change = node.create_client(ChangeState, f"{base}/change_state")
    get = node.create_client(GetState, f"{base}/get_state")
    estimate_service = f"{base}/estimate"

    def state():
        return call(node, executor, get, GetState.Request()).current_state.id

    def transition(tid):
        return call(node, executor, change, ChangeState.Request(transition=Transition(id=tid))).success

    def offered():
        return any(name == estimate_service for name, _ in node.get_service_names_and_types())

    try:
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not offered()
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == State.PRIMARY_STATE_INACTIVE
        assert transition(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
        deadline = time.monotonic() + 10
        while not offered() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert offered()  # active: subscribed, serving, reporting
        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == State.PRIMARY_STATE_INACTIVE
        deadline = time.monotonic() + 10
        while offered() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert not offered()
        assert transition(Transition.TRANSITION_CLEANUP) and state() == State.PRIMARY_STATE_UNCONFIGURED
        assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
    log = log_path.read_text()
    assert log.count("configured: models loaded on cpu") == 2
    for bad in ("ERROR", "Traceback", "RCLError"):
        assert bad not in log, log


def test_camera_info_pairs_by_its_own_tolerance_not_the_image_slop(
    ros_context, unique_topic, segmenter_weights, tmp_path
):
    """A driver whose camera_info stamps differ from the images' still gets answers (the images are
    synchronised within sync_slop; camera_info only within camera_info_tolerance, and may arrive after the
    images); a stale camera_info is counted, not used."""
    from test_pose_node import Harness, frame

    proc = start_process(
        "cleanpose_ros.pose_node",
        unique_topic,
        *FAST,
        f"segmentation_weights:={segmenter_weights}",
        "sync_slop:=0.01",
        "camera_info_tolerance:=1.0",
        log_path=tmp_path / "pose.log",
    )
    h = Harness(ros_context, unique_topic)
    try:
        assert h.spin_until(lambda: h.pub["rgb"].get_subscription_count() > 0 or proc.poll() is not None, 90)
        rgb, depth, info = frame(500)
        info.header.stamp.sec, info.header.stamp.nanosec = 500, 400_000_000  # 0.4 s off: far beyond sync_slop
        h.pub["info"].publish(info)
        h.spin_until(lambda: False, 0.5)
        assert h.spin_until(lambda: (h.pub["depth"].publish(depth), h.pub["rgb"].publish(rgb),
                                     h.spin_until(lambda: bool(h.poses), 1.0))[-1], 30), \
            (tmp_path / "pose.log").read_text()
        assert h.poses[-1].header.stamp.sec == 500
        # A camera_info published after its images (a slow driver, a low rate): the frame waits for it.
        rgb, depth, info = frame(505)
        h.pub["depth"].publish(depth)
        h.pub["rgb"].publish(rgb)
        h.spin_until(lambda: False, 0.1)  # within INFO_WAIT_S (0.5 s)
        h.pub["info"].publish(info)
        assert h.spin_until(lambda: h.poses[-1].header.stamp.sec == 505, 30), (
            tmp_path / "pose.log"
        ).read_text()
        # The newest camera_info is now 5 s older than the images and none follows: counted.
        rgb, depth, _ = frame(510)
        h.pub["depth"].publish(depth)
        h.pub["rgb"].publish(rgb)

        def counted():
            return any(kv.key == "problem camera_info_missing" and int(kv.value) >= 1
                       for d in h.diagnostics for s in d.status for kv in s.values)
        assert h.spin_until(counted, 15)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        h.node.destroy_node()
    log = (tmp_path / "pose.log").read_text()
    assert "newest camera_info is 5.00 s from the image" in log
    # frame 505 waited for its late camera_info
    assert "newest camera_info is 4.60 s from the image" not in log
