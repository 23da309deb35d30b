"""Synthetic RGB-D camera + pose node (+ RViz): the whole system with no camera and no GPU.

    ros2 launch cleanpose_ros demo.launch.py rviz:=true
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("cleanpose_ros")
    args = [
        DeclareLaunchArgument("rate", default_value="5.0", description="Synthetic camera rate (Hz)"),
        DeclareLaunchArgument("seed", default_value="7", description="Synthetic scene seed"),
        DeclareLaunchArgument("motion", default_value="orbit", description="orbit | static"),
        DeclareLaunchArgument("device", default_value="auto"),
        DeclareLaunchArgument("rviz", default_value="true"),
    ]
    camera = Node(
        package="cleanpose_ros", executable="synthetic_camera", name="synthetic_camera", namespace="camera",
        parameters=[{"rate": LaunchConfiguration("rate"), "seed": LaunchConfiguration("seed"),
                     "motion": LaunchConfiguration("motion")}],
        output="screen",
    )
    pose = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pose.launch.py"])),
        launch_arguments={
            "rgb_topic": "/camera/color/image_raw",
            "depth_topic": "/camera/aligned_depth_to_color/image_raw",
            "camera_info_topic": "/camera/color/camera_info",
            "device": LaunchConfiguration("device"),
            "rviz": LaunchConfiguration("rviz"),
        }.items(),
    )
    return LaunchDescription(args + [camera, pose])
