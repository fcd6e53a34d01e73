"""ament_flake8 over the package, its launch file and its tests, with the project's configuration."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    # setup.cfg's [flake8]: ament_flake8's configuration with 120-column lines and double quotes
    rc, errors = main_with_errors(argv=[str(ROOT / "icnet_ros"), str(ROOT / "launch" / "segment.launch.py"),
                                        str(ROOT / "test"), "--config", str(ROOT / "setup.cfg")])
    assert rc == 0, "Found %d code style errors / warnings:\n" % len(errors) + "\n".join(errors)
