"""Synthetic RGB-D camera + pose node (+ RViz): the whole system with no camera and no GPU.

    ros2 launch cleanpose_ros demo.launch.py rviz:=true
    ros2 launch cleanpose_ros demo.launch.py rate:=10 managed:=true
    ros2 launch cleanpose_ros demo.launch.py depth_model:=stereo camera_preset:=d435 rate:=2  # D435 depth

The synthetic camera publishes its pose on /tf (world -> camera_color_optical_frame), so the pose node tracks
objects in `world` by default (tracking_frame:='' tracks in the camera frame) and RViz shows them in it.
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
        DeclareLaunchArgument("depth_model", default_value="noisy",
                              description="Synthetic depth: ideal | noisy | stereo (d435|d415 only)"),
        DeclareLaunchArgument("camera_preset", default_value="real275",
                              description="Synthetic camera: real275 | d435 | d415 | azure_720p"),
        DeclareLaunchArgument("device", default_value="auto"),
        DeclareLaunchArgument("tracking_frame", default_value="world",
                              description="Frame the pose node tracks in; '' = the camera frame"),
        DeclareLaunchArgument("target_frame", default_value="",
                              description="Frame of the published poses; '' = the camera's optical frame"),
        DeclareLaunchArgument("managed", default_value="false", description="Run the lifecycle pose node"),
        DeclareLaunchArgument("rviz", default_value="true"),
    ]
    camera = Node(
        package="cleanpose_ros", executable="synthetic_camera", name="synthetic_camera", namespace="camera",
        parameters=[{"rate": LaunchConfiguration("rate"), "seed": LaunchConfiguration("seed"),
                     "motion": LaunchConfiguration("motion"),
                     "depth_model": LaunchConfiguration("depth_model"),
                     "camera": LaunchConfiguration("camera_preset")}],
        output="screen",
    )
    pose = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pose.launch.py"])),
        launch_arguments={
            "camera": "synthetic",
            "device": LaunchConfiguration("device"),
            "tracking_frame": LaunchConfiguration("tracking_frame"),
            "target_frame": LaunchConfiguration("target_frame"),
            "managed": LaunchConfiguration("managed"),
            "rviz": LaunchConfiguration("rviz"),
        }.items(),
    )
    return LaunchDescription(args + [camera, pose])
