"""pip install of the Python package (the ROS build uses CMakeLists.txt; see README).

The ROS message module diffpose_ros.msg is not built here: scripts/setup.sh generates it with
the rosidl generators and installs it next to this package.
"""
from setuptools import find_packages, setup

CONSOLE_SCRIPTS = [
    # ROS executables
    "diffpose-pose-node = diffpose_ros.ros.node:main",
    "diffpose-sample-camera = diffpose_ros.ros.sample_camera:main",
    "diffpose-demo = diffpose_ros.tools.demo:main",
    "diffpose-soak = diffpose_ros.tools.soak:main",
    "diffpose-bench-node = diffpose_ros.tools.bench_node:main",
    "diffpose-bench-peers = diffpose_ros.tools.bench_peers:main",
    "diffpose-bench-startup = diffpose_ros.tools.bench_startup:main",
    # data
    "diffpose-build-dataset = diffpose_ros.tools.build_dataset:main",
    "diffpose-render-data = diffpose_ros.tools.render_data:main",
    # lifter
    "diffpose-train = diffpose_ros.tools.train:main",
    "diffpose-fit-gmm = diffpose_ros.tools.fit_gmm:main",
    "diffpose-calibrate = diffpose_ros.tools.calibrate:main",
    "diffpose-evaluate = diffpose_ros.tools.evaluate:main",
    # per-track filter
    "diffpose-evaluate-filter = diffpose_ros.tools.evaluate_filter:main",
    "diffpose-lift = diffpose_ros.tools.lift:main",
    # backends
    "diffpose-export-sampler = diffpose_ros.tools.export_sampler:main",
    "diffpose-bench-sampler = diffpose_ros.tools.bench_sampler:main",
    # detector
    "diffpose-export-detector = diffpose_ros.tools.export_detector:main",
    "diffpose-detect = diffpose_ros.tools.detect:main",
    "diffpose-bench-detector = diffpose_ros.tools.bench_detector:main",
]

setup(
    name="diffpose_ros",
    version="0.1.0",
    description="Monocular 3D human pose with per-joint uncertainty (DiffPose) for ROS 2",
    license="Apache-2.0 (code); CC BY-NC 4.0 (lifter weights); AGPL-3.0 (YOLO11 detector weights)",
    packages=find_packages(include=["diffpose_ros", "diffpose_ros.*"]),
    package_data={"diffpose_ros": [
        "weights/**/*.pt", "weights/**/*.npz", "weights/**/*.json", "weights/**/*.md",
        "data/skeleton_maps/*.json", "filter/*.json",
    ]},
    python_requires=">=3.10",
    install_requires=["numpy", "scipy", "opencv-python-headless", "torch", "onnx", "onnxruntime",
                      "tqdm", "matplotlib", "pyyaml"],
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
