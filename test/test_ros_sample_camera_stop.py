"""The sample camera stops cleanly on Ctrl-C: rclpy's SIGINT handler shuts the context down from
its own thread, so a timer tick that is already running publishes into a dead context. That tick
must end quietly (`ros2 launch ... sample_camera:=true` reported the camera as died, exit 1, with
an RCLError traceback, on one CI run's Ctrl-C)."""
import pytest

rclpy = pytest.importorskip("rclpy")

from diffpose_ros.ros.sample_camera import SampleCamera  # noqa: E402

pytestmark = [pytest.mark.ros]


@pytest.fixture
def camera(ros_env):
    """A sample camera in a context of its own (the test shuts it down)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    camera = SampleCamera(context=context)
    yield camera
    camera.destroy_node()
    if context.ok():
        rclpy.shutdown(context=context)


def test_a_tick_after_the_context_shut_down_ends_quietly(camera):
    camera.tick()
    assert camera.sent == 1
    rclpy.shutdown(context=camera.context)   # what the SIGINT handler does, between two ticks' waits
    camera.tick()                            # raised RCLError before
    assert camera.sent == 1


def test_a_publish_error_while_running_is_not_hidden(camera):
    camera.destroy_publisher(camera.pub_image)   # the context is fine: a real error
    with pytest.raises(Exception):
        camera.tick()
