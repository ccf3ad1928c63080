"""Motion-capture data pipeline: BVH -> H36M-17 joints -> virtual robot cameras -> detector-like 2D."""
from diffpose_ros.data.dataset import causal_windows, load_pairs
from diffpose_ros.data.noise import NoiseConfig

__all__ = ["load_pairs", "causal_windows", "NoiseConfig"]
