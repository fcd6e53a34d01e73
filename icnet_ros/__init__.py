"""
icnet_ros: ICNet road segmentation for ROS 2.

The core (model, engine, geometry, metrics, datasets, training) imports no rclpy; the
ROS layer lives in ``icnet_ros.ros``.
"""

__version__ = "0.1.0"
