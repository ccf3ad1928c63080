"""sensor_msgs/Image and CompressedImage payloads -> BGR uint8 arrays, with numpy and OpenCV.

No cv_bridge: PyPI's cv-bridge is a ROS 1 port that breaks with OpenCV 5 and numpy 2, and the
conversion is a few lines per encoding. Functions take the message fields, so they import no
rclpy and are tested without ROS. Every failure is an ImageError naming the problem.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, dtype, OpenCV conversion to BGR or None)
RAW_ENCODINGS = {
    "bgr8": (3, np.uint8, None),
    "rgb8": (3, np.uint8, cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2BGR),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2BGR),
    "8uc1": (1, np.uint8, cv2.COLOR_GRAY2BGR),
    "8uc3": (3, np.uint8, None),
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2BGR),
    "16uc1": (1, np.uint16, cv2.COLOR_GRAY2BGR),
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),        # ROS 'yuv422' is UYVY
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2BGR_YUY2),
    # ROS names a Bayer pattern by its first 2x2 block read row by row (bayer_rggb8: R G / G B);
    # OpenCV's short names (BayerRG, ...) go by the second row, so use its explicit
    # four-letter names, which follow the ROS reading (COLOR_BayerRGGB2BGR == COLOR_BayerBG2BGR)
    "bayer_rggb8": (1, np.uint8, cv2.COLOR_BayerRGGB2BGR),
    "bayer_bggr8": (1, np.uint8, cv2.COLOR_BayerBGGR2BGR),
    "bayer_gbrg8": (1, np.uint8, cv2.COLOR_BayerGBRG2BGR),
    "bayer_grbg8": (1, np.uint8, cv2.COLOR_BayerGRBG2BGR),
}
MAX_PIXELS = 4096 * 4096   # larger frames are refused: no robot camera sends them, and a
                           # 8000x8000 frame would stall the detector's resize for seconds


class ImageError(ValueError):
    """An image that cannot be used; the message says why."""


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"empty image ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(f"image too large ({width}x{height} > {MAX_PIXELS} pixels)")


def decode_raw(data, width: int, height: int, step: int, encoding: str, is_bigendian: int = 0) -> np.ndarray:
    """Raw Image fields -> (height, width, 3) BGR uint8."""
    enc = encoding.lower()
    if enc not in RAW_ENCODINGS:
        raise ImageError(f"unsupported encoding '{encoding}' (supported: {', '.join(sorted(RAW_ENCODINGS))})")
    _check_size(width, height)
    channels, dtype, conversion = RAW_ENCODINGS[enc]
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    if step < row:
        raise ImageError(f"step {step} is smaller than width*channels*bytes = {row} for {encoding}")
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else data,
                        dtype=np.uint8)
    if buf.size < step * height:
        raise ImageError(f"data has {buf.size} bytes, expected step*height = {step * height}")
    rows = buf[: step * height].reshape(height, step)[:, :row]
    pixels = np.ascontiguousarray(rows).view(dtype)
    if itemsize > 1 and bool(is_bigendian) != (np.little_endian is False):
        pixels = pixels.byteswap()
    pixels = pixels.reshape(height, width, channels)
    if dtype == np.uint16:   # 16-bit mono (IR, depth-like): scale the used range to 8 bits
        peak = int(pixels.max()) or 1
        pixels = (pixels.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels if channels > 1 else pixels[..., 0], conversion)


def decode_compressed(data, fmt: str = "") -> np.ndarray:
    """CompressedImage payload (JPEG, PNG, ...) -> BGR uint8."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageError("empty compressed image")
    # cheap header check first, so a huge PNG is refused before it is decoded
    header = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is None:
        raise ImageError(f"cannot decode compressed image (format '{fmt}', {buf.size} bytes)")
    _check_size(header.shape[1] * 8, header.shape[0] * 8)   # refuse a huge image before decoding it whole
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"cannot decode compressed image (format '{fmt}', {buf.size} bytes)")
    _check_size(image.shape[1], image.shape[0])
    return image


def encode_bgr8(image: np.ndarray) -> tuple[bytes, int, int, int]:
    """BGR uint8 -> (data, width, height, step) for a bgr8 Image."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    return image.tobytes(), w, h, w * 3
