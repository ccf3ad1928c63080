"""diffpose_ros: monocular 3D human pose with per-joint uncertainty (DiffPose) for ROS 2.

The pipeline, one subpackage each: camera images -> ``detector`` (2D keypoints, tracking) ->
``lifter`` (DiffPose: 3D pose + covariance) run by ``backends`` (PyTorch, ONNX Runtime,
TensorRT) -> ``ros`` (the node and its messages). ``data`` turns motion capture into training
pairs; ``tools`` holds the command-line programs. Only ``ros`` imports rclpy.
"""
# The generated message module (diffpose_ros.msg) may be installed in another directory of the
# same name (the venv's site-packages, or a colcon install space): let Python find it there.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
