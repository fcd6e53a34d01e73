"""Ground-plane geometry (no ROS): homographies, KITTI calib, grid rasterisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from icnet_ros.ground import geometry as G

CALIB = Path(__file__).parent / "data/kitti_road/calib/um_000000.txt"
K = np.array([[100.0, 0.0, 64.0], [0.0, 100.0, 48.0], [0.0, 0.0, 1.0]])


def test_homography_matches_an_independent_3d_projection():
    # cv2.projectPoints with the camera pose as rvec/tvec is an independent route
    height, pitch, roll, yaw, x, y = 1.4, 0.12, -0.03, 0.2, 1.5, -0.3
    H = G.ground_homography(K, height, pitch, roll, yaw, x, y)
    R = G.rotation(roll, pitch, yaw)                    # optical axes in base_frame
    rvec, _ = cv2.Rodrigues(R.T)
    tvec = -R.T @ np.array([x, y, height])
    pts = np.array([[5.0, 0.0, 0.0], [12.0, 3.0, 0.0], [30.0, -4.0, 0.0], [8.0, 1.0, 0.0]])
    expected, _ = cv2.projectPoints(pts, rvec, tvec, K, np.zeros(5))
    u, v, front = G.project(H, pts[:, 0], pts[:, 1])
    assert front.all()
    np.testing.assert_allclose(np.stack([u, v], 1), expected[:, 0], atol=1e-6)


def test_level_camera_by_hand():
    H = G.ground_homography(K, 1.0)
    u, v, front = G.project(H, [2.0, 10.0, 10.0, -5.0], [0.0, 0.0, 1.0, 0.0])
    assert front[:3].all() and not front[3]          # behind the camera
    np.testing.assert_allclose(u[:3], [64.0, 64.0, 54.0])    # left of centre for Y > 0
    np.testing.assert_allclose(v[:3], [98.0, 58.0, 58.0])    # v = cy + f h / X


def test_positive_pitch_looks_down_and_yaw_left():
    _, v_level, _ = G.project(G.ground_homography(K, 1.0), 10.0, 0.0)
    _, v_down, _ = G.project(G.ground_homography(K, 1.0, pitch=0.1), 10.0, 0.0)
    assert v_down < v_level          # looking down, the same ground point sits higher in the image
    u, _, _ = G.project(G.ground_homography(K, 1.0, yaw=np.pi / 4), 10.0, 10.0)
    assert u == pytest.approx(64.0)


def test_kitti_homography_is_kitti_formula_and_agrees_with_its_pose():
    calib = G.read_kitti_calib(CALIB)
    assert calib["P2"].shape == (3, 4) and calib["R0_rect"].shape == (3, 3)
    Tr33 = G.kitti_road_homography(CALIB)
    # a road point (x right, y 0, z forward) through KITTI's full chain
    Tr = np.vstack([calib["Tr_cam_to_road"], [0, 0, 0, 1]])
    R0 = np.eye(4)
    R0[:3, :3] = calib["R0_rect"]
    road = np.array([1.5, 0.0, 20.0, 1.0])
    p = calib["P2"] @ R0 @ np.linalg.inv(Tr) @ road
    q = Tr33 @ np.array([1.5, 20.0, 1.0])
    np.testing.assert_allclose(q[:2] / q[2], p[:2] / p[2])
    # base_frame version: X forward = road z, Y left = -road x
    u, v, _ = G.project(G.kitti_ground_homography(calib), 20.0, -1.5)
    np.testing.assert_allclose([u, v], p[:2] / p[2])
    # and a level camera 1.56 m up with KITTI's intrinsics lands within a few pixels
    u2, v2, _ = G.project(G.ground_homography(G.kitti_intrinsics(calib), 1.56), 20.0, -1.5)
    assert abs(u2 - u) < 10 and abs(v2 - v) < 15


def test_read_kitti_calib_errors(tmp_path):
    with pytest.raises(G.GeometryError, match="cannot be read"):
        G.read_kitti_calib(tmp_path / "missing.txt")
    (tmp_path / "a.txt").write_text("P2: 1 2 3 4 5 6 7 8 9 10 11 12\n")
    with pytest.raises(G.GeometryError, match="no R0_rect"):
        G.read_kitti_calib(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("P2: 1 2 x\n")
    with pytest.raises(G.GeometryError, match="non-numeric"):
        G.read_kitti_calib(tmp_path / "b.txt")


def test_bad_pose_and_grid():
    with pytest.raises(G.GeometryError, match="height"):
        G.ground_homography(K, 0.0)
    with pytest.raises(G.GeometryError, match="focal"):
        G.ground_homography(np.zeros((3, 3)), 1.0)
    with pytest.raises(G.GeometryError, match="x_max"):
        G.GridSpec(x_min=5.0, x_max=1.0)
    with pytest.raises(G.GeometryError, match="y_max"):
        G.GridSpec(y_min=5.0, y_max=5.0)
    with pytest.raises(G.GeometryError, match="resolution"):
        G.GridSpec(resolution=0.0)
    with pytest.raises(G.GeometryError, match="too large"):
        G.GridSpec(x_max=1000.0, y_min=-1000.0, y_max=1000.0, resolution=0.01)


def test_grid_from_a_mask_whose_lower_part_is_road():
    # 96x128 image, level camera 1 m up, f 100: ground at X lands on row 48 + 100 / X.
    # Rows >= 72 are road, i.e. X < 100 / 24 = 4.17 m.
    mask = np.zeros((96, 128), bool)
    mask[72:] = True
    spec = G.GridSpec(0.0, 20.0, -5.0, 5.0, 0.1)
    grid = G.occupancy_grid(mask, G.ground_homography(K, 1.0), spec)
    assert grid.shape == (100, 200) and grid.dtype == np.int8
    cell = lambda x, y: grid[int((y + 5.0) / 0.1), int(x / 0.1)]  # noqa: E731
    assert cell(3.05, 0.05) == G.FREE            # row 80.8: road
    assert cell(10.05, 0.05) == G.OCCUPIED       # row 57.9: not road
    assert cell(1.05, 0.05) == G.UNKNOWN         # row 143: below the image
    assert cell(3.05, 4.95) == G.UNKNOWN         # u = 64 - 100 * 4.95 / 3.05 < 0: outside the view
    assert set(np.unique(grid)) == {G.FREE, G.OCCUPIED, G.UNKNOWN}


def test_projector_samples_any_map_and_checks_size():
    img = np.arange(96 * 128, dtype=np.int32).reshape(96, 128)
    spec = G.GridSpec(2.5, 10.0, -2.0, 2.0, 0.5)
    proj = G.GroundProjector(G.ground_homography(K, 1.0), spec, img.shape)
    out = proj.sample(img, fill=-7)
    X, Y = spec.cell_centers()
    u, v, _ = G.project(G.ground_homography(K, 1.0), X, Y)
    inside = proj.visible
    np.testing.assert_array_equal(out[inside], (np.floor(v + 0.5) * 128 + np.floor(u + 0.5))[inside])
    assert (out[~inside] == -7).all()
    colour = proj.sample(np.zeros((96, 128, 3), np.uint8))
    assert colour.shape == (spec.height, spec.width, 3)
    with pytest.raises(G.GeometryError, match="built for 128x96"):
        proj.sample(np.zeros((10, 10)))


def test_projector_samples_the_pixel_that_holds_the_point():
    # CameraInfo's K puts pixel centres at integers: pixel (r, c) spans [c - 0.5, c + 0.5) x [r - 0.5, r + 0.5).
    # A level camera 1 m up with f = 100, cy = 48: v = 48 + 100 / X.  X = 100 / 9.4 gives v = 57.4 (row 57),
    # X = 100 / 9.6 gives v = 57.6 (row 58); the old floor(v) put both in row 57.
    img = np.repeat(np.arange(96, dtype=np.int32)[:, None], 128, 1)            # each pixel holds its row
    for x, row in ((100 / 9.4, 57), (100 / 9.6, 58), (100 / 9.5 + 1e-6, 57), (100 / 9.5 - 1e-6, 58)):
        spec = G.GridSpec(x - 0.0005, x + 0.0005, -0.0005, 0.0005, 0.001)     # one cell centred on (x, 0)
        assert G.GroundProjector(G.ground_homography(K, 1.0), spec, img.shape).sample(img)[0, 0] == row
    # u likewise: u = 64 - 100 Y / X; Y = -0.45 X / 100 gives u = 64.45 (column 64), -0.55 X / 100 column 65
    img = np.repeat(np.arange(128, dtype=np.int32)[None], 96, 0)
    for y, col in ((-0.0045 * 10, 64), (-0.0055 * 10, 65)):
        spec = G.GridSpec(10 - 0.0005, 10 + 0.0005, y - 0.0005, y + 0.0005, 0.001)
        assert G.GroundProjector(G.ground_homography(K, 1.0), spec, img.shape).sample(img)[0, 0] == col
    # the bottom row holds v up to H - 0.5: a point at v = 95.4 is seen, at v = 95.6 not
    for v, seen in ((95.4, True), (95.6, False)):
        x = 100 / (v - 48)
        spec = G.GridSpec(x - 0.0005, x + 0.0005, -0.0005, 0.0005, 0.001)
        assert bool(G.GroundProjector(G.ground_homography(K, 1.0), spec, (96, 128)).visible[0, 0]) is seen


def test_kitti_camera_pose_gives_kittis_homography():
    calib = G.read_kitti_calib(CALIB)
    pose = G.kitti_camera_pose(calib, 0.5, -0.2)
    H = G.pose_homography(G.kitti_intrinsics(calib), pose)
    expected = G.kitti_ground_homography(calib, 0.5, -0.2)
    np.testing.assert_allclose(H / H[2, 2], expected / expected[2, 2], rtol=0, atol=2e-4)
    assert 1.5 < pose.position[2] < 1.7                   # KITTI's camera is about 1.6 m up
    np.testing.assert_allclose(pose.rotation.T @ pose.rotation, np.eye(3), atol=1e-6)
    assert abs(pose.heading()) < 0.01                     # it looks along X


def test_bev_image_orientation_and_kitti_spec():
    spec = G.KITTI_BEV
    assert (spec.height, spec.width) == (400, 800)
    grid = np.zeros((spec.height, spec.width), np.uint8)
    grid[-1, -1] = 1          # far left corner (largest Y = left, largest X = far)
    img = G.bev_image(grid)
    assert img.shape == (800, 400) and img[0, 0] == 1
    png = G.grid_to_png(np.array([[0, 100], [-1, 0]], np.int8))
    assert png.dtype == np.uint8 and sorted(np.unique(png)) == [0, 128, 255]


def test_bird_eye_view_of_a_kitti_frame():
    calib = G.read_kitti_calib(CALIB)
    image = cv2.imread(str(CALIB.parent.parent / "image_2/um_000000.png"))
    bev = G.bird_eye_view(image, G.kitti_ground_homography(calib))
    assert bev.shape == (800, 400, 3)
    assert bev[-50:, 150:250].mean() > 0          # the road just ahead is seen


def test_scale_intrinsics():
    K2 = G.scale_intrinsics(K, (96, 128), (48, 64))
    np.testing.assert_allclose(K2, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
