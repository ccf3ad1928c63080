"""2D stage: multi-person COCO-17 keypoints (YOLO11n-pose via onnxruntime), COCO -> H36M
mapping, per-joint 2D uncertainty and tracking. No torch or ultralytics at run time
(``export.py`` needs them once to produce the ONNX file)."""
from diffpose_ros.detector.coco_to_h36m import coco_to_h36m
from diffpose_ros.detector.tracker import Track, Tracker
from diffpose_ros.detector.uncertainty import box_diagonal, keypoint_sigma_px
from diffpose_ros.detector.yolo_pose import Detection, YoloPoseDetector

__all__ = ["Detection", "YoloPoseDetector", "coco_to_h36m", "keypoint_sigma_px", "box_diagonal",
           "Tracker", "Track"]
