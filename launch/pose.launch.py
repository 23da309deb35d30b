"""Run the pose node on a live RGB-D camera.

    ros2 launch cleanpose_ros pose.launch.py camera:=realsense device:=cuda rviz:=true
    ros2 launch cleanpose_ros pose.launch.py camera:=custom rgb_topic:=/cam/rgb depth_topic:=/cam/depth_reg \
        camera_info_topic:=/cam/rgb_info

`camera` picks a recipe, config/cameras/<camera>.yaml: the driver's topic names and whether its images are
rectified (realsense = realsense-ros 4.x with align_depth.enable:=true, azure_kinect, oakd = depthai-ros, zed
= zed-ros2-wrapper 5.x, synthetic, custom). rgb_topic, depth_topic, camera_info_topic and images_rectified,
when given, win over the recipe. The depth image must be registered to the colour camera (same size, same
optical frame).

target_frame: publish poses in this frame ("" = the camera's optical frame); tracking_frame: track objects in
this frame, e.g. odom or world, so a moving camera keeps their ids ("" = the camera frame). Both need TF.
managed:=true runs the lifecycle variant (managed_pose_node); autostart:=true configures and activates it.
rviz:=true starts RViz in the node's namespace, fixed frame = target_frame, else tracking_frame, else the
recipe's optical frame.
"""

from pathlib import Path

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

CAMERAS = ("realsense", "azure_kinect", "oakd", "zed", "synthetic", "custom")
TOPICS = {"rgb_topic": "rgb/image", "depth_topic": "depth/image", "camera_info_topic": "rgb/camera_info"}
BOOLS = {"true": True, "false": False}


def _flag(context, name: str) -> bool:
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value not in BOOLS:
        raise ValueError(f"launch argument {name}:={value!r}: expected true or false")
    return BOOLS[value]


def _recipe(context, share: str) -> dict:
    camera = LaunchConfiguration("camera").perform(context)
    if camera not in CAMERAS:
        raise ValueError(f"launch argument camera:={camera!r}: expected one of {', '.join(CAMERAS)}")
    recipe = yaml.safe_load((Path(share) / "config" / "cameras" / f"{camera}.yaml").read_text())
    for name in TOPICS:  # an explicit launch argument wins over the recipe
        value = LaunchConfiguration(name).perform(context)
        if value:
            recipe[name] = value
    rectified = LaunchConfiguration("images_rectified").perform(context)
    if rectified:
        recipe["images_rectified"] = _flag(context, "images_rectified")
    return recipe


def _pose_node(context, *args, **kwargs):
    share = FindPackageShare("cleanpose_ros").perform(context)
    recipe = _recipe(context, share)
    namespace = LaunchConfiguration("namespace").perform(context)
    target_frame = LaunchConfiguration("target_frame").perform(context)
    tracking_frame = LaunchConfiguration("tracking_frame").perform(context)
    # Plain Python values, so that launch_ros passes them as they are (an empty frame stays an empty string).
    parameters = [
        LaunchConfiguration("params_file").perform(context),
        {
            "device": LaunchConfiguration("device").perform(context),
            "images_rectified": bool(recipe["images_rectified"]),
            "target_frame": target_frame,
            "tracking_frame": tracking_frame,
        },
    ]
    node_args = dict(
        package="cleanpose_ros", name="pose_node", namespace=namespace, parameters=parameters,
        remappings=[(TOPICS[name], recipe[name]) for name in TOPICS], output="screen",
    )
    actions = []
    if _flag(context, "managed"):
        node = LifecycleNode(executable="managed_pose_node", **node_args)
        actions.append(node)
        if _flag(context, "autostart"):
            # configure once the process runs; activate when configuring has reached inactive (not after a
            # later deactivate, which also ends in inactive)
            actions.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                      transition_id=Transition.TRANSITION_ACTIVATE))])))
            actions.append(EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                       transition_id=Transition.TRANSITION_CONFIGURE)))
    else:
        actions.append(Node(executable="pose_node", **node_args))

    if _flag(context, "rviz"):
        # The .rviz file names the node's topics relative (pose_node/markers, ...): they resolve in RViz's
        # own namespace, which is the node's. RViz config files cannot hold substitutions; -f sets the fixed
        # frame.
        fixed_frame = target_frame or tracking_frame or recipe.get("optical_frame") or ""
        arguments = ["-d", str(Path(share) / "config" / "cleanpose.rviz")]
        if fixed_frame:
            arguments += ["-f", fixed_frame]
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", namespace=namespace,
                            arguments=arguments))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("cleanpose_ros")
    args = [
        DeclareLaunchArgument("namespace", default_value="cleanpose", description="Namespace of the node"),
        DeclareLaunchArgument("camera", default_value="realsense", choices=list(CAMERAS),
                              description="Topic recipe, config/cameras/<camera>.yaml"),
        DeclareLaunchArgument("rgb_topic", default_value="",
                              description="Colour image; '' = from the recipe"),
        DeclareLaunchArgument("depth_topic", default_value="",
                              description="Depth registered to the colour camera (16UC1 mm or 32FC1 m); "
                                          "'' = from the recipe"),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="Colour camera_info; '' = from the recipe"),
        DeclareLaunchArgument("images_rectified", default_value="",
                              description="true | false: images already rectified (use camera_info.p, no "
                                          "undistortion); '' = from the recipe"),
        DeclareLaunchArgument("target_frame", default_value="",
                              description="Frame of the published poses; '' = the camera's optical frame"),
        DeclareLaunchArgument("tracking_frame", default_value="",
                              description="Frame the tracker works in (e.g. odom); '' = the camera frame"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "pose.yaml"])),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("managed", default_value="false", choices=["true", "false"],
                              description="Run the lifecycle node (managed_pose_node) instead of pose_node"),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="With managed:=true, configure and activate it at once"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start RViz with the shipped config"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_pose_node)])
