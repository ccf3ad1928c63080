"""ros2 launch diffpose_ros pose.launch.py [image_topic:=...] [sample_camera:=true] ...

Starts the DiffPose pose node; with sample_camera:=true also a sample camera that publishes the
bundled images (or a video) as Image + CameraInfo, so it runs on a machine with no camera.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("diffpose_ros")
    args = [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="sensor_msgs/CameraInfo topic"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "pose.yaml"),
                              description="node parameters"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto | tensorrt | onnxruntime | onnxruntime-cuda | torch | torch-cuda"),
        DeclareLaunchArgument("detector_model", default_value="",
                              description="YOLOv8/YOLO11-pose ONNX ('' = bundled yolo11n-pose)"),
        DeclareLaunchArgument("sample_camera", default_value="false",
                              description="also start a sample camera publishing the bundled images"),
        DeclareLaunchArgument("sample_source", default_value="",
                              description="images folder, image files (comma-separated) or a video; '' = bundled"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz"),
    ]
    camera = Node(
        package="diffpose_ros", executable="sample_camera", name="sample_camera",
        condition=IfCondition(LaunchConfiguration("sample_camera")),
        parameters=[{"source": LaunchConfiguration("sample_source"), "rate_hz": 10.0,
                     "image_topic": LaunchConfiguration("image_topic"),
                     "camera_info_topic": LaunchConfiguration("camera_info_topic")}],
        output="screen")
    node = Node(
        package="diffpose_ros", executable="pose_node", name="diffpose_pose_node",
        parameters=[LaunchConfiguration("params_file"),
                    {"image_topic": LaunchConfiguration("image_topic"),
                     "camera_info_topic": LaunchConfiguration("camera_info_topic"),
                     "backend": LaunchConfiguration("backend"),
                     "detector_model": LaunchConfiguration("detector_model")}],
        output="screen", emulate_tty=True)
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2",
        arguments=["-d", os.path.join(share, "config", "diffpose.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription(args + [camera, node, rviz])
