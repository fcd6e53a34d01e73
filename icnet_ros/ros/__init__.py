"""
The thin ROS 2 layer: the segmentation node, message conversion and the replay player.

Everything here only adapts messages and parameters to the ROS-free core.
"""
