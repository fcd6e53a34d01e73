"""
The Fast DDS shared-memory profile: the variable the installed Fast DDS reads, and it works.

Only that variable is set (Fast DDS 3 warns at every start when the other is set too;
Fast DDS 2 reads only its own), unless the user chose a profile already.  That the profile
is applied is measured on the node's own process: the shared-memory segment it maps under
/dev/shm is the profile's 32 MB, not Fast DDS's default 512 KB.  Both venvs run these:
.venv on Kilted (Fast DDS 3.2), .venv-floor on Jazzy (Fast DDS 2.14).  And it works:
best-effort megabyte frames cross processes (with Fast DDS's defaults none arrived here).
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import HAVE_RCLPY, wait_for
from icnet_ros import paths

ROOT = Path(__file__).resolve().parent.parent
PROFILE = str(ROOT / "config" / "fastdds_large_frames.xml")
MIB = 1 << 20
DEPRECATED = "deprecated"       # Fast DDS 3's warning: "FASTRTPS_DEFAULT_PROFILES_FILE ... is deprecated"
# A participant's own segment, as Fast DDS 2 (fastrtps_) and 3 (fastdds_) name it; not its port files
SEGMENT = re.compile(r"^/dev/shm/fast(?:dds|rtps)_(?!port)[0-9a-f]+$")


def _rmw_library(text: bytes, tmp_path: Path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / paths.RMW_FASTRTPS_LIBRARY).write_bytes(b"\x7fELF\x00" + text + b"\x00librmw.so\x00")
    return str(folder)


def test_the_fast_dds_version_is_read_from_the_middleware_library(tmp_path, monkeypatch):
    jazzy = _rmw_library(b"libfastrtps.so.2.14", tmp_path, "jazzy")
    kilted = _rmw_library(b"libfastdds.so.3.2", tmp_path, "kilted")
    odd = _rmw_library(b"libfastrtps.so.2.6\x00libfastdds.so.3.2", tmp_path, "odd")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no_venv"))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    for search, major in (([jazzy, kilted], 2), ([kilted, jazzy], 3),   # the first on the path, as ROS loads it
                          ([str(tmp_path), odd], None), ([str(tmp_path)], None)):
        monkeypatch.setenv("LD_LIBRARY_PATH", os.pathsep.join(search))
        assert paths.fast_dds_major() == major, search
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))                     # a ROS prefix's lib/
    (tmp_path / "lib").symlink_to(kilted)
    assert paths.fast_dds_major() == 3
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))                 # ROS wheels: the venv's lib/
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "lib").symlink_to(jazzy)
    assert paths.fast_dds_major() == 2


@pytest.mark.parametrize("major, chosen", [(3, ("FASTDDS_DEFAULT_PROFILES_FILE",)),
                                           (2, ("FASTRTPS_DEFAULT_PROFILES_FILE",)),
                                           (None, paths.PROFILE_VARIABLES)])   # no Fast DDS middleware found
def test_only_the_variable_fast_dds_reads_is_set(monkeypatch, major, chosen):
    monkeypatch.setattr(paths, "fast_dds_major", lambda: major)
    for var in paths.PROFILE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    file = paths.use_large_frame_transport()
    assert file and file.endswith("config/fastdds_large_frames.xml")
    assert {var: os.environ[var] for var in paths.PROFILE_VARIABLES if var in os.environ} == dict.fromkeys(chosen, file)


def test_the_users_choice_of_either_variable_stands(monkeypatch):
    for mine, other in (("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                        ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")):
        for var in paths.PROFILE_VARIABLES:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv(mine, "/etc/mine.xml")
        assert paths.use_large_frame_transport() == "/etc/mine.xml"
        assert other not in os.environ


def _loaded_fast_dds_major() -> int | None:
    """Return the major version of the Fast DDS library this process has loaded, from /proc/self/maps."""
    found = set(re.findall(r"/lib(?:fastdds|fastrtps)\.so\.(\d+)", Path("/proc/self/maps").read_text()))
    return int(found.pop()) if len(found) == 1 else None


@pytest.mark.ros
def test_the_version_read_is_the_fast_dds_that_ros_loads(ros_context):
    assert paths.fast_dds_major() == _loaded_fast_dds_major() is not None


def _own_segment(pid: int) -> int | None:
    """Bytes of the shared-memory segment a lone participant's process maps (None before it has one)."""
    sizes = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) == 6 and SEGMENT.match(fields[5]):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            sizes[fields[5]] = sizes.get(fields[5], 0) + end - start
    assert len(sizes) <= 1, f"more than one participant's segment mapped: {sizes}"
    return sizes.popitem()[1] if sizes else None


def _lone_env(**profile) -> dict:
    """Return the environment with no profile variable but those given, and no discovery (no other segment)."""
    env = {k: v for k, v in os.environ.items() if k not in paths.PROFILE_VARIABLES}
    return {**env, "ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF", "OMP_NUM_THREADS": "1", **profile}


def _start(args: list[str], env: dict, ready: str = "") -> tuple[int | None, str]:
    """
    Run a ROS process until its participant has mapped its segment and it printed ``ready``.

    Returns (the segment's bytes, all it printed until it exited on SIGINT).
    """
    import threading

    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: proc.poll() is not None or (_own_segment(proc.pid) is not None
                                                     and any(ready in line for line in lines)), 60.0, 0.1)
        size = _own_segment(proc.pid) if proc.poll() is None else None
    finally:
        proc.send_signal(signal.SIGINT)      # a clean exit: Fast DDS removes its segment
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    return size, "".join(lines)


PARTICIPANT = textwrap.dedent("""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    rclpy.init()
    try:
        rclpy.spin(rclpy.create_node("lone_participant"))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
""")


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_a_node_start_maps_the_profiles_segment_and_warns_of_nothing(tiny_checkpoint):
    """The node, started with no profile variable set and run to active: the 32 MB segment, no deprecation warning."""
    size, out = _start([sys.executable, "-m", "icnet_ros.ros.node", "--ros-args", "-r", "__ns:=/profile",
                        "-p", f"model_path:={tiny_checkpoint}", "-p", "warmup:=false", "-p", "num_threads:=1"],
                       _lone_env(), ready="active: subscribed to")
    assert size is not None, f"segment mapped no shared-memory segment:\n{out}"
    assert size >= 32 * MIB, f"segment's Fast DDS segment is {size / MIB:.2f} MB, not the profile's 32 MB:\n{out}"
    assert DEPRECATED not in out and "PROFILES_FILE" not in out, out


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_fast_dds_2_reads_the_profile_from_fastrtps_default_profiles_file_only():
    """Jazzy (.venv-floor): with only FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2.14 keeps its 512 KB default."""
    if paths.fast_dds_major() != 2:
        pytest.skip("Fast DDS 2 only (make test-floor runs Jazzy's 2.14)")
    args = [sys.executable, "-c", PARTICIPANT]
    without, out = _start(args, _lone_env(FASTDDS_DEFAULT_PROFILES_FILE=PROFILE))
    assert without is not None and without < MIB, f"{without} bytes without FASTRTPS_DEFAULT_PROFILES_FILE:\n{out}"
    with_it, out = _start(args, _lone_env(FASTRTPS_DEFAULT_PROFILES_FILE=PROFILE))
    assert with_it is not None and with_it >= 32 * MIB, f"{with_it} bytes with FASTRTPS_DEFAULT_PROFILES_FILE:\n{out}"


@pytest.mark.ros
@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")
def test_fast_dds_3_warns_when_fastrtps_default_profiles_file_is_set():
    """Kilted (.venv): the warning the node start must not print, printed when the old variable is set."""
    if paths.fast_dds_major() != 3:
        pytest.skip("Fast DDS 3 only (make test runs Kilted's)")
    size, out = _start([sys.executable, "-c", PARTICIPANT], _lone_env(FASTRTPS_DEFAULT_PROFILES_FILE=PROFILE))
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" in out and DEPRECATED in out, out
    assert size is not None and size >= 32 * MIB        # read all the same


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
