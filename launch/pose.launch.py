"""ros2 launch diffpose_ros pose.launch.py [sample_camera:=true] [image_topic:=...] [namespace:=...] ...

Starts the DiffPose pose node; with sample_camera:=true also a sample camera that publishes the
bundled images (or a video) as Image + CameraInfo, so it runs on a machine with no camera.

The node subscribes to the relative names `image` and `camera_info`: start it in the camera's
namespace (namespace:=/camera), remap them in your own launch file
(remappings=[("image", "/camera/color/image_raw"), ("camera_info", "/camera/color/camera_info")]),
or name the topics with image_topic:= / camera_info_topic:= here or in the params file.

The params file (default config/pose.yaml) is the base. A launch argument that you give on the
command line overrides it; one you leave out changes nothing, so a value in your own params file
is never replaced by a launch default.
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# launch argument -> node parameter, passed only when the argument is given (not '')
FLOOR = ("camera_height_m", "camera_pitch_deg", "camera_roll_deg")   # numbers: the floor, for the body size
OVERRIDES = ("image_topic", "camera_info_topic", "backend", "detector_model", "lifter_weights",
             "use_sim_time") + FLOOR
CAMERA_OVERRIDES = ("image_topic", "camera_info_topic", "use_sim_time")
TRUE = ("true", "1", "yes", "on")


def given_overrides(arg: dict) -> dict:
    """The node parameters the user gave as launch arguments ('' = not given), typed."""
    given = {name: arg[name] for name in OVERRIDES if arg.get(name, "") != ""}
    if "use_sim_time" in given:
        given["use_sim_time"] = given["use_sim_time"].lower() in TRUE
    for name in FLOOR:
        if name in given:
            try:
                given[name] = float(given[name])
            except ValueError:
                raise RuntimeError(f"{name}:={given[name]!r} is not a number; nothing was started") from None
    return given


def check_rviz(wanted: bool) -> None:
    """rviz:=true needs rviz2: say so before anything starts, not after the other nodes are up."""
    if not wanted:
        return
    try:
        get_package_share_directory("rviz2")
    except (PackageNotFoundError, OSError):     # OSError: no AMENT_PREFIX_PATH at all
        raise RuntimeError("rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                           "nothing was started") from None


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in
           OVERRIDES + ("params_file", "namespace", "sample_camera", "sample_source", "rviz")}
    rviz = arg["rviz"].lower() in TRUE
    check_rviz(rviz)
    given = given_overrides(arg)
    share = get_package_share_directory("diffpose_ros")
    actions = [Node(
        package="diffpose_ros", executable="pose_node", name="diffpose_pose_node", namespace=arg["namespace"],
        parameters=[arg["params_file"]] + ([given] if given else []),
        output="screen", emulate_tty=True)]
    if arg["sample_camera"].lower() in TRUE:
        # the same params file: the camera publishes on the node's image_topic / camera_info_topic
        camera = {name: given[name] for name in CAMERA_OVERRIDES if name in given}
        camera["rate_hz"] = 10.0
        if arg["sample_source"]:
            camera["source"] = arg["sample_source"]
        actions.append(Node(
            package="diffpose_ros", executable="sample_camera", name="sample_camera", namespace=arg["namespace"],
            parameters=[arg["params_file"], camera], output="screen"))
    if rviz:
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", namespace=arg["namespace"],
                            arguments=["-d", os.path.join(share, "config", "diffpose.rviz")]))
    return actions


def generate_launch_description():
    share = get_package_share_directory("diffpose_ros")
    not_given = " (default: the params file's value, else the node's own default)"
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "pose.yaml"),
                              description="node parameters (YAML, '/**' or node-name keys)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="", description="true: use /clock" + not_given),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="sensor_msgs/Image topic (node default: the relative name image)"
                              + not_given),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="sensor_msgs/CameraInfo topic (node default: camera_info)" + not_given),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | tensorrt | onnxruntime | onnxruntime-cuda | torch | torch-cuda"
                              + not_given),
        DeclareLaunchArgument("detector_model", default_value="",
                              description="YOLOv8/YOLO11-pose ONNX path" + not_given),
        DeclareLaunchArgument("lifter_weights", default_value="",
                              description="frame | temporal (the bundled DiffPose models) | a bundle folder"
                              + not_given),
        DeclareLaunchArgument("camera_height_m", default_value="",
                              description="the camera's height above the floor, m: the body's size from its feet "
                              "(0: unknown)" + not_given),
        DeclareLaunchArgument("camera_pitch_deg", default_value="",
                              description="the camera's optical axis below the horizon, degrees" + not_given),
        DeclareLaunchArgument("camera_roll_deg", default_value="",
                              description="the camera's roll about its optical axis, degrees" + not_given),
        DeclareLaunchArgument("sample_camera", default_value="false",
                              description="also start a sample camera publishing the bundled images"),
        DeclareLaunchArgument("sample_source", default_value="",
                              description="images folder, image files (comma-separated) or a video; '' = bundled"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz (needs rviz2)"),
        OpaqueFunction(function=_nodes),
    ])
