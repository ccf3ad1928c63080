"""DiffPose 2D->3D lifter: context encoder, GMM diffusion, sampler, placement, calibration.

Import the submodules directly (e.g. `from diffpose_ros.lifter.sampler import build_sampler`).
"""
