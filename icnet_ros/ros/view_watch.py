"""
One camera's view of the ground, watched frame by frame: its blind zone, or that it sees no ground.

The geometry is icnet_ros/ground/blind_zone.py's; here it is computed again only when the
view changes (intrinsics, pose, frame size, ego mask), kept for /diagnostics
(``blind zone (m)``) and logged once when it changes, so a user copies the number into
Nav2's ``raytrace_min_range`` (docs/nav2.md) instead of doing trigonometry.
"""

from __future__ import annotations

from ..ground.blind_zone import blind_zone, no_ground_message
from ..ground.geometry import GeometryError

LOG_STEP_M = 0.05       # a pan-tilt head moves the blind zone at every frame: log only a change this large


class ViewWatch:
    """The latest view's blind zone ('' while unknown) and its problem ('' or why it sees no ground)."""

    def __init__(self):
        self.value = ""
        self.problem = ""
        self._key = None
        self._logged: float | None = None

    def update(self, logger, frame: str, K, pose, size: tuple[int, int], ego) -> str:
        """Take this frame's view; return '' or the one-line reason its camera sees no ground."""
        if K is None or pose is None:
            self.value = self.problem = ""
            return ""
        key = (frame, K.tobytes(), pose.rotation.tobytes(), pose.position.tobytes(), tuple(size),
               None if ego is None else (id(ego), ego.shape))      # ego masks are cached per size
        if key == self._key:
            return self.problem
        self._key = key
        try:
            zone = blind_zone(K, pose, size, ego)
        except GeometryError:        # a pose under the ground: the grid's own check names it
            self.value = self.problem = ""
            return ""
        if zone is None:
            self.value, self.problem = "", no_ground_message(frame, pose)
            return self.problem
        self.value, self.problem = f"{zone.distance:.2f}", ""
        if self._logged is None or abs(zone.distance - self._logged) >= LOG_STEP_M:
            self._logged = zone.distance
            logger.info(f"camera '{frame}': blind zone {zone.distance:.2f} m from its ground point "
                        f"({zone.ahead:.2f} m straight ahead); set raytrace_min_range of Nav2's ObstacleLayer "
                        f"sources to at least that, rounded up, plus one costmap cell (docs/nav2.md)")
        return ""
