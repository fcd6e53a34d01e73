"""
Where the shipped model lives.

The ROS share directory after ``colcon build``, the venv's ``share/`` after ``pip
install``, or ``models/`` in a source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import site
import sys

PACKAGE = "icnet_ros"
SHIPPED_MODEL = "icnet_road.pt"


def share_dirs() -> list[Path]:
    dirs = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (plain venv)
            pass
    except ImportError:
        pass
    dirs += _installed_share_dirs()
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    dirs.append(Path(site.getuserbase()) / "share" / PACKAGE)   # pip install --user
    dirs.append(Path(__file__).resolve().parent.parent)  # source checkout
    return list(dict.fromkeys(dirs))


def _installed_share_dirs() -> list[Path]:
    """
    Return the share/icnet_ros that pip wrote for this install, wherever its scheme put it.

    The distribution's RECORD lists the data files relative to site-packages, so this
    finds them after ``pip install .``, ``--user`` or ``--prefix`` alike.
    """
    from importlib import metadata

    try:
        files = metadata.distribution(PACKAGE).files or []
    except metadata.PackageNotFoundError:
        return []
    marker = f"share/{PACKAGE}/package.xml"
    for f in files:
        if f.as_posix().endswith(marker):
            return [Path(f.locate()).resolve().parent]
    return []


def find_share_file(relative: str) -> Path | None:
    for d in share_dirs():
        if (d / relative).is_file():
            return d / relative
    return None


def default_model_path() -> Path:
    """Return the shipped model; a clear error when it is not installed anywhere."""
    found = find_share_file(f"models/{SHIPPED_MODEL}")
    if found is None:
        looked = ", ".join(str(d / "models") for d in share_dirs())
        raise FileNotFoundError(f"shipped model {SHIPPED_MODEL} not found (looked in {looked}); "
                                f"pass a checkpoint path")
    return found


FAST_DDS_3_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"    # Fast DDS 3: Kilted
FAST_DDS_2_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"   # Fast DDS 2: Humble (2.6), Jazzy (2.14)
PROFILE_VARIABLES = (FAST_DDS_3_VARIABLE, FAST_DDS_2_VARIABLE)
# The library both Fast DDS middlewares (rmw_fastrtps_cpp, rmw_fastrtps_dynamic_cpp) load,
# and the Fast DDS library names it can need: libfastdds.so.3.x (Fast DDS 3 renamed its
# library) or libfastrtps.so.2.x.
RMW_FASTRTPS_LIBRARY = "librmw_fastrtps_shared_cpp.so"
_FAST_DDS_SONAME = re.compile(rb"lib(?:fastdds|fastrtps)\.so\.(\d+)")


def _library_dirs() -> list[str]:
    """Where ROS's middleware loader looks (LD_LIBRARY_PATH), then the ROS prefixes and this venv."""
    dirs = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    dirs += [os.path.join(p, "lib") for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs.append(os.path.join(sys.prefix, "lib"))     # ROS from the package index: the venv's lib/
    return [d for d in dict.fromkeys(dirs) if d]


def fast_dds_major() -> int | None:
    """
    Return the major version of the Fast DDS that ROS's Fast DDS middleware uses here.

    Read from the Fast DDS library that the first rmw_fastrtps_shared_cpp library on the
    search path needs (its ELF dynamic section names libfastdds.so.3.2 on Kilted,
    libfastrtps.so.2.14 on Jazzy, libfastrtps.so.2.6 on Humble): the library that will be
    loaded, in a /opt/ros install and in a venv alike, whatever the distro is called.
    None when there is no such library, or it names no Fast DDS library or two.
    """
    for d in _library_dirs():
        lib = os.path.join(d, RMW_FASTRTPS_LIBRARY)
        if os.path.isfile(lib):
            try:
                with open(lib, "rb") as f:
                    majors = {int(m) for m in _FAST_DDS_SONAME.findall(f.read())}
            except OSError:
                return None
            return majors.pop() if len(majors) == 1 else None
    return None


def profile_variables() -> tuple[str, ...]:
    """Return the variable the installed Fast DDS reads its profiles file from; both when that is unknown."""
    major = fast_dds_major()
    if major is None:
        return PROFILE_VARIABLES
    return (FAST_DDS_3_VARIABLE,) if major >= 3 else (FAST_DDS_2_VARIABLE,)


def use_large_frame_transport() -> str | None:
    """
    Point Fast DDS at config/fastdds_large_frames.xml unless the user chose a profile already.

    The profile sets up a 32 MB shared-memory segment.  Call before rclpy.init(): the
    participant reads it once.  Without it, frames over 512 KB cross processes as
    fragmented UDP (more CPU; best-effort QoS then loses whole frames).  Only the variable
    that the installed Fast DDS reads is set (profile_variables): Fast DDS 3 (Kilted)
    warns at every start that FASTRTPS_DEFAULT_PROFILES_FILE is deprecated when that one
    is set too, and Fast DDS 2 (Humble, Jazzy) reads only it.  Where no Fast DDS
    middleware is found, both are set.  Nothing is set when the user set either.
    Returns the file in use.
    """
    for var in PROFILE_VARIABLES:
        if os.environ.get(var):
            return os.environ[var]
    found = find_share_file("config/fastdds_large_frames.xml")
    if found is not None:
        for var in profile_variables():
            os.environ[var] = str(found)
        return str(found)
    return None


# Where setup.py installs test/data/kitti_road (share/icnet_ros/ by colcon and by pip).
SAMPLES = "samples/kitti_road"
CHECKOUT_SAMPLES = Path(__file__).resolve().parent.parent / "test/data/kitti_road"


def sample_frames_dir() -> Path:
    """
    Return the bundled KITTI sample frames (image_2/, calib/) the demo plays.

    Raises a clear error saying what to pass when they are installed nowhere.
    """
    for d in share_dirs():
        if (d / SAMPLES / "image_2").is_dir():
            return d / SAMPLES
    if (CHECKOUT_SAMPLES / "image_2").is_dir():
        return CHECKOUT_SAMPLES
    looked = ", ".join(str(d / SAMPLES) for d in share_dirs())
    raise FileNotFoundError(f"the sample KITTI frames are not installed (looked in {looked}); "
                            f"pass --source with a folder of images or a bag")


def use_private_ros_domain(offset: int = 0) -> int:
    """
    Give this process (and its children) a ROS_DOMAIN_ID of its own, from its pid.

    So tests and demos never talk to other ROS graphs on the host.  1..101: inside the
    range ROS recommends on Linux (0 is everyone's default; above 101 the DDS ports can
    collide with the kernel's ephemeral ports).  `offset` keeps processes started together
    (consecutive pids) apart.  Call before rclpy.init().
    """
    domain = 1 + (os.getpid() + offset) % 101
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain
