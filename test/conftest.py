"""
Shared test setup.

A private ROS_DOMAIN_ID per test run (icnet_ros.paths.use_private_ros_domain: from the pid,
in 1..101), set before anything imports rclpy, so concurrent test runs and demos on this
host never see each other's topics.  ROS tests skip cleanly when rclpy does not import.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from fake_cuda import fake_cuda  # noqa: F401  (the fixture: CUDA code paths run on the CPU)
import pytest

from icnet_ros.paths import use_large_frame_transport, use_private_ros_domain

# Before anything imports rclpy; the one place tests pick it.  `make test` runs two
# pytest-xdist workers (gw0, gw1 ..., consecutive pids): spread evenly over the 101 domains,
# so none sees another's graph (the node's input watch lists the topics it finds there).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
use_private_ros_domain(offset=101 // _WORKERS * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0))
use_large_frame_transport()  # as the node and player do: megabyte frames over shared memory

try:
    import rclpy as _rclpy  # noqa: F401

    HAVE_RCLPY = True
except Exception:  # ImportError, or a broken ROS install failing at load
    HAVE_RCLPY = False


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked cuda where there is no GPU (make gpu-check runs them on one)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]   # not keywords: a param id 'cuda'
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (make gpu-check runs these)")
    for item in marked:
        item.add_marker(skip)


def tiny_checkpoint_file(path, classes=None, constant_class: int | None = None):
    """
    Return a tiny randomly initialised ICNet checkpoint.

    With constant_class, the final classifier's weights are zero and its bias picks
    that class: every pixel of every frame comes out as that class, so tests control
    what the node sees.
    """
    import torch

    from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
    from icnet_ros.classes import CAMVID

    meta = ModelMeta(classes or CAMVID, variant="r18", width=0.25)
    torch.manual_seed(0)
    model = meta.build()
    if constant_class is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-10.0)
            model.classifier.bias[constant_class] = 10.0
    return save_checkpoint(path, model, meta)


def green_road_checkpoint_file(path):
    """
    Return a KITTI_ROAD checkpoint wired by hand so that green pixels are road and red ones are not.

    The high-resolution branch carries (green - red) through one channel of each conv to
    the classifier; every other weight is zero.
    """
    import torch

    from icnet_ros.inference.checkpoint import ModelMeta, save_checkpoint
    from icnet_ros.classes import KITTI_ROAD

    meta = ModelMeta(KITTI_ROAD, variant="r18", width=0.25)
    model = meta.build().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():             # eval BatchNorm: identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
        first, second, third = (block[0] for block in model.sub1)
        first.weight[0, 1, 1, 1], first.weight[0, 0, 1, 1] = 1.0, -1.0     # green - red
        second.weight[0, 0, 1, 1] = 1.0
        third.weight[0, 0, 1, 1] = 1.0
        model.cff_12.high[0].weight[0, 0, 0, 0] = 1.0
        model.classifier.weight[1, 0, 0, 0] = 10.0                         # road logit
        model.classifier.bias[1] = -10.0
    return save_checkpoint(path, model, meta)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def ros_context():
    if not HAVE_RCLPY:
        pytest.skip("rclpy does not import here")
    import rclpy

    rclpy.init(args=[])
    yield
    rclpy.try_shutdown()


_private_domains = itertools.count(1)


@pytest.fixture
def private_graph(ros_context):
    """
    Give a test that talks to a subprocess a fresh DDS participant on a domain of its own.

    Yields (context, env): create the test's nodes and executors with ``context`` and
    start the subprocess with ``env``.  Why: after a long session the shared session
    participant sometimes never discovered a new subprocess (seen after a run of other
    DDS tests: every later subprocess test timed out, each passing alone); a fresh
    participant on unused ports does not inherit whatever state that was.
    """
    import rclpy

    base = int(os.environ["ROS_DOMAIN_ID"])
    domain = 1 + (base - 1 + next(_private_domains)) % 101   # in 1..101, never the session's
    context = rclpy.Context()
    rclpy.init(args=[], context=context, domain_id=domain)
    try:
        yield context, {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    finally:
        context.try_shutdown()


@pytest.fixture
def torch_threads():
    """One torch thread while a test runs (2 shared cores), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


def wait_for(condition, timeout: float = 10.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def next_status(diags: list, want, timeout: float = 4.0):
    """
    Return the first DiagnosticStatus arriving in diags from now on for which want(status) holds.

    diags: the DiagnosticArrays a probe collects.  The node publishes them at 1 Hz: wait.
    """
    seen = len(diags)

    def match():
        for arr in list(diags)[seen:]:
            for s in arr.status:
                if want(s):
                    return s
        return None

    assert wait_for(lambda: match() is not None, timeout), "no such diagnostics"
    return match()


_namespaces = itertools.count()


class Graph:
    """
    The node under test plus a probe node, spun by a real executor on a background thread.

    The probe node holds the test publishers and subscribers; each Graph gets its own
    namespace.
    """

    def __init__(self, checkpoint, autostart: bool = True, **params):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from icnet_ros.ros.node import SegmentationNode

        self.ns = f"/t{os.getpid()}_{next(_namespaces)}"
        # input_timeout_s 0: a test publishes its CameraInfo once where a driver sends one per
        # frame, so on a loaded machine the watch would warn in the middle of an unrelated test.
        # The watch's own tests set it.
        params = {"model_path": str(checkpoint), "num_threads": 1, "warmup": False, "input_timeout_s": 0.0,
                  **params}
        self.node = SegmentationNode(namespace=self.ns, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node("probe", namespace=self.ns)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.received: dict[str, list] = {}
        self._lock = threading.Lock()
        if autostart:
            assert self.configure(), self.node.last_error
            assert self.activate()

    def configure(self) -> bool:
        from rclpy.lifecycle import TransitionCallbackReturn

        return self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS

    def activate(self) -> bool:
        from rclpy.lifecycle import TransitionCallbackReturn

        return self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def topic(self, relative: str) -> str:
        return f"{self.ns}/{relative}"

    def output(self, name: str, camera: str = "") -> str:
        return f"{self.ns}/icnet/{camera + '/' if camera else ''}{name}"

    def publisher(self, msg_type, topic: str, reliable: bool = True, depth: int = 10):
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy

        qos = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE if reliable
                         else QoSReliabilityPolicy.BEST_EFFORT)
        return self.probe.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str) -> list:
        """Messages arriving on topic, in order (reliable, deep queue)."""
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy

        box = self.received.setdefault(topic, [])

        def store(msg):
            with self._lock:
                box.append(msg)

        self.probe.create_subscription(msg_type, topic, store,
                                       QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE))
        return box

    def wait_matched(self, *publishers, timeout: float = 10.0) -> None:
        """
        Wait until every test publisher and every listened node output is matched.

        A test publisher is matched when it reaches the node, a node output when it
        reaches the probe (DDS discovery takes a moment).
        """
        def ready():
            if any(p.get_subscription_count() < 1 for p in publishers):
                return False
            for cam in self.node.cameras:
                for pub in cam.pubs.values():
                    if pub.topic_name in self.received and pub.get_subscription_count() < 1:
                        return False
            return True

        assert wait_for(ready, timeout), "DDS discovery did not match publishers and subscribers"

    def close(self) -> None:
        if self.node.state == "active":
            self.node.trigger_deactivate()
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node._stop_worker()
        self.node.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def standin(monkeypatch):
    """tf2_ros as test/tf2_standin.py (tf2_ros has no wheel: a stand-in of its Python API), emptied."""
    import sys

    import tf2_standin

    tf2_standin.BUFFERS.clear()
    tf2_standin.LISTENERS.clear()
    monkeypatch.setitem(sys.modules, "tf2_ros", tf2_standin)
    return tf2_standin


@pytest.fixture
def graph_factory(ros_context, tiny_checkpoint, torch_threads):
    graphs = []

    def make(checkpoint=None, **params):
        g = Graph(checkpoint or tiny_checkpoint, **params)
        graphs.append(g)
        return g

    yield make
    for g in graphs:
        g.close()
