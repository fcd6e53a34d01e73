"""
The ground: from a per-pixel drivable map and the camera's pose to what a planner reads.

No ROS.  ``geometry``: camera pose -> ground homography -> bird's-eye grid (the node's
grid and KITTI's BEV evaluation); ``drivable``: the drivable area connected to the
vehicle, the confidence image; ``ego_mask``: the robot's own body in the image;
``obstacles``: the grid's edge as points along rays from the camera's ground point;
``blind_zone``: the ground the camera cannot see, and a pose that sees no ground.
"""
