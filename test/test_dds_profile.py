"""
The Fast DDS shared-memory profile: chosen unless the user set one, and it works.

It works: best-effort megabyte frames cross processes (with Fast DDS's defaults none
arrived here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import HAVE_RCLPY, wait_for
from icnet_ros import paths


def test_profile_is_used_unless_the_user_chose_one(monkeypatch):
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    chosen = paths.use_large_frame_transport()
    assert chosen and chosen.endswith("config/fastdds_large_frames.xml")
    # Fast DDS 3 (Kilted) reads the first, Fast DDS 2 (Humble, Jazzy) only the second
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == chosen
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == chosen
    for mine, other in (("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                        ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")):
        for var in paths.PROFILE_VARIABLES:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv(mine, "/etc/mine.xml")       # the user's choice, of either, stands
        assert paths.use_large_frame_transport() == "/etc/mine.xml"
        assert other not in os.environ


PUBLISHER = textwrap.dedent("""
    import array, sys, time, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("big_publisher", namespace=sys.argv[1])
    pub = node.create_publisher(Image, "big", qos_profile_sensor_data)
    msg = Image(height=375, width=1242, encoding="rgb8", step=1242 * 3)
    msg.data = array.array("B", bytes(1242 * 375 * 3))   # bytes: checked per byte on Humble
    deadline = time.time() + 20
    while pub.get_subscription_count() == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for _ in range(10):
        pub.publish(msg)
        time.sleep(0.1)
    time.sleep(0.5)
""")


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_best_effort_megabyte_frames_arrive_between_processes(private_graph):
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    context, env = private_graph
    got = []
    ns = f"/dds{os.getpid()}"
    node = rclpy.create_node("big_listener", namespace=ns, context=context)
    node.create_subscription(Image, "big", lambda m: got.append(len(m.data)), qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        run = subprocess.run([sys.executable, "-c", PUBLISHER, ns], capture_output=True, text=True, timeout=60,
                             env=env)
        assert run.returncode == 0, run.stderr
        assert wait_for(lambda: len(got) >= 5, 5.0), f"only {len(got)} of 10 best-effort 1.4 MB frames arrived"
        assert set(got) == {1242 * 375 * 3}
    finally:
        executor.shutdown(timeout_sec=2.0)
        thread.join(timeout=5.0)
        node.destroy_node()
