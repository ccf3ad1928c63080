"""Motion-capture data pipeline: BVH -> H36M-17 joints -> bodies, virtual cameras, detector-like 2D.

The generator API (fresh camera, body and noise per sample):
    bank = MotionBank.load(sources=None, fps=10.0)         # data/motion.py, sources: data/sources.py
    splits = protocol_splits(bank, "leave-out-v1")         # data/protocol.py
    gen = PairGenerator(bank, splits["train"], window=1)   # data/generator.py
    batch = gen.sample(rng, 256); fixed = gen.fixed_set(seed=0, n_per_clip=20)
One camera fixed over a whole clip (the per-track filter's evaluation): data/sequence.py.
"""
from diffpose_ros.data.body import BodyConfig
from diffpose_ros.data.generator import PairGenerator
from diffpose_ros.data.motion import MotionBank
from diffpose_ros.data.noise import NoiseConfig
from diffpose_ros.data.protocol import protocol_splits
from diffpose_ros.data.sequence import causal_windows, make_sequence
from diffpose_ros.data.sources import SourceSpecError, parse_source_spec
from diffpose_ros.data.virtual_camera import CameraConfig

__all__ = ["MotionBank", "PairGenerator", "protocol_splits", "parse_source_spec", "SourceSpecError",
           "CameraConfig", "NoiseConfig", "BodyConfig", "make_sequence", "causal_windows"]
