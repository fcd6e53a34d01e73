"""
The node on a GPU machine, over real DDS, with the fake_cuda fixture (fake_cuda.py).

The default device 'auto' and 'cuda' configure, warm up and answer frames (masks, the
drivable confidence and the grid); int8 under 'auto' takes the CPU with one info line;
any unexpected failure while the model loads is one configure error line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import HAVE_RCLPY, tiny_checkpoint_file, wait_for
from synthetic import write_rgb

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image

    from icnet_ros.ros.conversions import numpy_to_image
    from test_node import image_publisher_with_info

H, W = 48, 64


@pytest.fixture(scope="module")
def road_checkpoint(tmp_path_factory):
    from icnet_ros.classes import KITTI_ROAD

    return tiny_checkpoint_file(tmp_path_factory.mktemp("road") / "road.pt", KITTI_ROAD, constant_class=1)


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_frames_in_masks_out_on_the_gpu(fake_cuda, graph_factory, road_checkpoint, device):
    g = graph_factory(road_checkpoint, device=device, warmup=True, camera_height=1.5)
    assert g.node.engine.device == torch.device("cuda", 0) and g.node.engine.precision == "fp16"
    boxes = [g.collect(Image, g.output(n)) for n in ("mask", "drivable_mask", "drivable_confidence")]
    boxes.append(g.collect(OccupancyGrid, g.output("drivable_area")))
    pub = image_publisher_with_info(g, H, W, f=60.0)
    g.wait_matched(pub)
    for sec in (1, 2, 3):
        msg = numpy_to_image(np.full((H, W, 3), 40 * sec, np.uint8))
        msg.header.stamp.sec, msg.header.frame_id = sec, "cam"
        pub.publish(msg)
        assert wait_for(lambda: all(b and b[-1].header.stamp.sec == sec for b in boxes), 10.0), "no output"
    classes, drivable, confidence, grid = (b[-1] for b in boxes)
    assert (np.frombuffer(drivable.data, np.uint8) > 0).all()          # every pixel road: the model's constant
    assert (np.frombuffer(confidence.data, np.uint8) == 255).all()
    assert (classes.height, classes.width) == (H, W) and 0 in np.array(grid.data, np.int8)
    assert g.node.stats()["bad"] == 0


def test_auto_with_int8_takes_the_cpu_with_one_info_line(fake_cuda, graph_factory, road_checkpoint, tmp_path, capfd):
    for i in range(2):
        write_rgb(tmp_path / "calib" / f"{i}.png", np.full((H, W, 3), 60 * i, np.uint8))
    g = graph_factory(road_checkpoint, autostart=False, precision="int8", calibration_images=str(tmp_path / "calib"))
    assert g.configure(), g.node.last_error
    assert g.node.engine.device == torch.device("cpu") and g.node.engine.backend == "onnxruntime"
    err = capfd.readouterr().err
    assert "device 'auto' chose the CPU although CUDA is available: precision 'int8' runs on the CPU only" in err


def test_an_unexpected_failure_while_loading_is_one_configure_error(fake_cuda, graph_factory, road_checkpoint,
                                                                    monkeypatch):
    def out_of_memory(device):
        raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")

    monkeypatch.setattr(torch.cuda, "set_device", out_of_memory)
    g = graph_factory(road_checkpoint, autostart=False, warmup=True)
    assert not g.configure()
    assert g.node.last_error == ("parameter 'device': running the model on device 'auto' failed "
                                 "(RuntimeError: CUDA error: out of memory)")
    assert g.node.state == "unconfigured" and g.node.engine is None
