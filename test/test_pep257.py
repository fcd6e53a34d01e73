"""ament_pep257 (ament's convention) over the package, its launch file and its tests."""

from pathlib import Path

from ament_pep257.main import main
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=[str(ROOT / "icnet_ros"), str(ROOT / "launch" / "segment.launch.py"), str(ROOT / "test")])
    assert rc == 0, "Found code style errors / warnings"
