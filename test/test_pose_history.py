"""The robot's planar pose at an image's stamp from odometry (icnet_ros/ground/odometry.py), without ROS."""

from __future__ import annotations

import math

import pytest

from icnet_ros.ground.odometry import EXTRAPOLATE_S, KEEP_S, MAX_MESSAGES, PoseHistory


def test_between_two_messages_the_pose_is_interpolated_the_short_way_round():
    h = PoseHistory()
    h.add(10.0, 0.0, 0.0, math.pi - 0.1)
    h.add(10.1, 1.0, 2.0, -math.pi + 0.1)          # turned 0.2 rad left across +-pi
    (x, y, yaw), why = h.at(10.025)
    assert why == "" and (x, y) == pytest.approx((0.25, 0.5))
    assert math.remainder(yaw - (math.pi - 0.05), 2 * math.pi) == pytest.approx(0.0, abs=1e-9)
    assert h.at(10.0)[0] == pytest.approx((0.0, 0.0, math.pi - 0.1))


def test_just_past_the_newest_message_its_twist_carries_the_pose():
    h = PoseHistory()
    h.add(5.0, 10.0, 0.0, math.pi / 2, vx=2.0, wz=0.0)     # heading +Y at 2 m/s
    (x, y, yaw), why = h.at(5.0 + 0.2)
    assert why == "" and (x, y, yaw) == pytest.approx((10.0, 0.4, math.pi / 2))
    h.add(5.1, 10.0, 0.2, math.pi / 2, vx=2.0, vy=1.0, wz=0.5)   # vy: to the robot's left, -X here
    (x, y, yaw), _ = h.at(5.2)
    mid = math.pi / 2 + 0.025
    assert (x, y, yaw) == pytest.approx((10.0 + (math.cos(mid) * 2 - math.sin(mid)) * 0.1,
                                         0.2 + (math.sin(mid) * 2 + math.cos(mid)) * 0.1, math.pi / 2 + 0.05))


@pytest.mark.parametrize("t, reason", [
    (9.0 + EXTRAPOLATE_S + 0.5,
     "the newest odometry is 0.75 s older than the image (at most 0.25 s is carried forward)"),
    (7.5, "the image is 0.50 s older than the oldest odometry kept (2 messages)"),
])
def test_a_stamp_outside_the_odometry_gets_no_pose_and_says_why(t, reason):
    h = PoseHistory()
    assert h.at(8.0) == (None, "no odometry received yet")
    h.add(8.0, 0.0, 0.0, 0.0)
    h.add(9.0, 1.0, 0.0, 0.0)
    assert h.at(t) == (None, reason)


def test_bad_messages_are_refused_saying_why():
    h = PoseHistory()
    assert h.add(1.0, float("nan"), 0.0, 0.0) == "a pose that is not finite (x nan)"
    assert h.add(1.0, 0.0, 0.0, 0.0, vx=float("inf")) == "a pose that is not finite (linear.x inf)"
    assert h.add(2.0, 0.0, 0.0, 0.0) == ""
    assert h.add(1.5, 0.0, 0.0, 0.0) == "a pose older than the newest one kept (1.500 s < 2.000 s)"
    assert len(h) == 1
    assert h.add(0.1, 5.0, 0.0, 0.0) == ""           # time went back by more than a second: start over
    assert len(h) == 1 and h.at(0.1)[0] == (5.0, 0.0, 0.0)


def test_the_history_is_bounded_in_time_and_count():
    h = PoseHistory()
    for k in range(3000):
        h.add(k * 0.01, float(k), 0.0, 0.0)           # 100 Hz for 30 s
    assert len(h) == int(KEEP_S / 0.01) + 1 <= MAX_MESSAGES
    assert h.at(29.99 - KEEP_S - 0.05)[0] is None and h.at(29.99 - KEEP_S + 0.05)[0] is not None
    for k in range(3000, 6000):
        h.add(30.0 + (k - 3000) * 0.001, 0.0, 0.0, 0.0)   # 1 kHz: the count bound holds
    assert len(h) == MAX_MESSAGES
