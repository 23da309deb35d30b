"""Run the pose node on a live RGB-D camera.

    ros2 launch cleanpose_ros pose.launch.py \
        rgb_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info device:=cuda rviz:=true

The depth image must be registered to the colour camera (same size, same optical frame).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("cleanpose_ros")
    args = [
        DeclareLaunchArgument("namespace", default_value="cleanpose", description="Namespace of the node"),
        DeclareLaunchArgument("rgb_topic", default_value="/camera/color/image_raw"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/aligned_depth_to_color/image_raw",
                              description="Depth registered to the rgb camera (16UC1 mm or 32FC1 m)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/color/camera_info"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "pose.yaml"])),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start RViz with the shipped config"),
    ]
    pose_node = Node(
        package="cleanpose_ros",
        executable="pose_node",
        name="pose_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), {"device": LaunchConfiguration("device")}],
        remappings=[
            ("rgb/image", LaunchConfiguration("rgb_topic")),
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("rgb/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        output="screen",
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "cleanpose.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + [pose_node, rviz])
