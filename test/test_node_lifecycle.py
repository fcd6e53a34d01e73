"""
Lifecycle over real DDS: publishers live from configure to cleanup.

So subscribers stay matched across deactivate -> activate and hear nothing while the
node is inactive; the node's own idea of its state agrees with the ~/get_state service.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from icnet_ros.ros.conversions import numpy_to_image


def image(sec: int):
    msg = numpy_to_image(np.random.default_rng(sec).integers(0, 256, (48, 64, 3), dtype=np.uint8), "rgb8")
    msg.header.stamp.sec = sec
    return msg


def ours(diags: list) -> int:
    return sum(1 for arr in list(diags) for s in arr.status if s.name.startswith("icnet"))


def test_subscribers_stay_matched_and_hear_nothing_while_inactive(graph_factory):
    g = graph_factory(qos_reliability="reliable")
    masks = g.collect(Image, g.output("mask"))
    diags = g.collect(DiagnosticArray, "/diagnostics")
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)
    mask_pub = g.node.cameras[0].pubs["mask"]
    gids = [bytes(i.endpoint_gid) for i in g.probe.get_publishers_info_by_topic(g.output("mask"))]
    assert len(gids) == 1
    pub.publish(image(1))
    assert wait_for(lambda: len(masks) == 1, 10.0)
    assert wait_for(lambda: ours(diags) > 0, 5.0)

    assert g.node.trigger_deactivate() == R.SUCCESS and g.node.state == "inactive"
    assert mask_pub.get_subscription_count() == 1           # still matched: nothing to rediscover
    mask_pub.publish(image(2))                               # a lifecycle publisher stays silent
    heard = ours(diags)
    wait_for(lambda: False, 1.5)                             # more than a diagnostics period
    assert len(masks) == 1 and ours(diags) == heard

    assert g.node.trigger_activate() == R.SUCCESS and g.node.state == "active"
    assert g.node.cameras[0].pubs["mask"] is mask_pub
    assert [bytes(i.endpoint_gid) for i in g.probe.get_publishers_info_by_topic(g.output("mask"))] == gids
    assert mask_pub.get_subscription_count() == 1
    g.wait_matched(pub)                                      # the node's subscription is new
    pub.publish(image(3))
    assert wait_for(lambda: len(masks) == 2, 10.0) and masks[-1].header.stamp.sec == 3

    assert g.node.trigger_deactivate() == R.SUCCESS and g.node.trigger_cleanup() == R.SUCCESS
    assert wait_for(lambda: g.probe.count_publishers(g.output("mask")) == 0, 5.0)   # gone at cleanup


def _service_state(g) -> str:
    from lifecycle_msgs.srv import GetState

    client = g.probe.create_client(GetState, f"{g.ns}/icnet/get_state")
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(GetState.Request())
        assert wait_for(future.done, 10.0)
        return future.result().current_state.label
    finally:
        g.probe.destroy_client(client)


def test_state_agrees_with_the_get_state_service(graph_factory):
    g = graph_factory(autostart=False, camera_height=0.0)     # refused at start: configure fails
    assert g.node.state == _service_state(g) == "unconfigured"
    assert g.node.trigger_configure() == R.FAILURE and "'camera_height'" in g.node.last_error
    assert g.node.state == _service_state(g) == "unconfigured"
    # a good value set live replaces the refused one
    assert g.node.set_parameters([Parameter("camera_height", value=1.5)])[0].successful
    steps = [(g.node.trigger_configure, "inactive"), (g.node.trigger_activate, "active"),
             (g.node.trigger_deactivate, "inactive"), (g.node.trigger_cleanup, "unconfigured"),
             (g.node.trigger_configure, "inactive"), (g.node.trigger_shutdown, "finalized")]
    for step, label in steps:
        assert step() == R.SUCCESS, (step.__name__, g.node.last_error)
        assert g.node.state == _service_state(g) == label, step.__name__
    assert g.node.engine is None and not g.node.cameras
