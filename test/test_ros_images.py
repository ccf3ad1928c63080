"""Image decoding for every encoding a camera driver publishes, and clear refusals."""
import cv2
import numpy as np
import pytest

from diffpose_ros.ros.images import MAX_PIXELS, ImageError, decode_compressed, decode_raw, encode_bgr8

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)


def test_bgr8_round_trip_with_row_padding():
    data, w, h, step = encode_bgr8(BGR)
    assert (decode_raw(data, w, h, step, "bgr8") == BGR).all()
    padded = np.zeros((h, step + 16), np.uint8)
    padded[:, :step] = np.frombuffer(data, np.uint8).reshape(h, step)
    assert (decode_raw(padded.tobytes(), w, h, step + 16, "bgr8") == BGR).all()


@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda: BGR[..., ::-1]),
    ("bgra8", lambda: cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA)),
    ("rgba8", lambda: cv2.cvtColor(BGR, cv2.COLOR_BGR2RGBA)),
])
def test_colour_encodings(encoding, make):
    arr = np.ascontiguousarray(make())
    out = decode_raw(arr.tobytes(), 64, 48, arr.strides[0], encoding)
    assert (out == BGR).all()


def test_mono8_and_mono16():
    grey = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)
    out = decode_raw(grey.tobytes(), 64, 48, 64, "mono8")
    assert out.shape == (48, 64, 3) and (out[..., 0] == grey).all()
    g16 = grey.astype(np.uint16) * 257
    out16 = decode_raw(g16.tobytes(), 64, 48, 128, "mono16")
    assert np.abs(out16[..., 0].astype(int) - grey.astype(int) * 255 // grey.max()).max() <= 1
    big = g16.byteswap()
    assert (decode_raw(big.tobytes(), 64, 48, 128, "mono16", is_bigendian=1) == out16).all()


def test_yuv422_uyvy():
    # a flat colour in UYVY decodes to that colour
    y, u, v = 120, 100, 160
    uyvy = np.tile(np.array([u, y, v, y], np.uint8), 48 * 32)
    out = decode_raw(uyvy.tobytes(), 64, 48, 128, "yuv422")
    luma = 1.164 * (y - 16)                 # BT.601 studio range, as camera drivers send it
    expected = np.array([luma + 2.018 * (u - 128), luma - 0.813 * (v - 128) - 0.391 * (u - 128),
                         luma + 1.596 * (v - 128)])
    assert np.abs(out.reshape(-1, 3) - expected).max() <= 2


def test_compressed_jpeg_and_png():
    for ext in (".png", ".jpg"):
        ok, buf = cv2.imencode(ext, BGR)
        out = decode_compressed(buf.tobytes(), ext[1:])
        assert out.shape == BGR.shape
        if ext == ".png":
            assert (out == BGR).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=b"\0" * 10, width=64, height=48, step=192, encoding="bgr8"), "expected step\\*height"),
    (dict(data=b"", width=0, height=0, step=0, encoding="bgr8"), "empty image"),
    (dict(data=b"\0" * 100, width=64, height=48, step=10, encoding="bgr8"), "step 10 is smaller"),
    (dict(data=b"\0" * 100, width=5, height=5, step=20, encoding="32FC1"), "unsupported encoding"),
    (dict(data=b"", width=8000, height=8000, step=24000, encoding="bgr8"), "too large"),
])
def test_bad_raw_images_are_refused(kwargs, match):
    with pytest.raises(ImageError, match=match):
        decode_raw(**kwargs)


def test_bad_compressed_images_are_refused():
    ok, buf = cv2.imencode(".jpg", BGR)
    with pytest.raises(ImageError, match="cannot decode"):
        decode_compressed(buf.tobytes()[:40], "jpeg")
    with pytest.raises(ImageError, match="empty"):
        decode_compressed(b"", "jpeg")
    assert 8000 * 8000 > MAX_PIXELS


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_decode_a_known_colour(pattern):
    """A flat scene of one colour, sampled through the pattern's colour filter array (2x2 block
    read row by row, as ROS names it), decodes back to that colour, red and blue not swapped."""
    bgr = {"b": 40, "g": 130, "r": 220}
    block = np.array([[bgr[pattern[0]], bgr[pattern[1]]], [bgr[pattern[2]], bgr[pattern[3]]]], np.uint8)
    mosaic = np.tile(block, (24, 32))                  # 48 x 64
    out = decode_raw(mosaic.tobytes(), 64, 48, 64, f"bayer_{pattern}8")
    inner = out[4:-4, 4:-4].reshape(-1, 3).astype(int)   # demosaicing borders are approximate
    assert np.abs(inner - [bgr["b"], bgr["g"], bgr["r"]]).max() <= 2, (pattern, inner.mean(axis=0))
