"""
Launch the segmentation node, optionally with a player and rviz2.

ros2 launch icnet_ros segment.launch.py [image_topic:=/camera/image_raw] [replay:=<folder or bag>]
[use_rviz:=true] [model_path:=...] [device:=cuda] [params_file:=...]

Starts the `icnet` segmentation node as a lifecycle node (it configures and activates
itself: its autostart parameter; `ros2 lifecycle` drives it when that is false), `play`
feeding it from a folder or bag when `replay` is given, and rviz2 with `use_rviz`.

Argument values are data: they are read as strings (`perform`) and compared in Python,
never pasted into a Python expression, so any path (quotes, spaces, non-ASCII) works.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def _nodes(context):
    """
    Return the segment node, and play when replay is given: an OpaqueFunction reads the values.

    model_path and device override the params file only when given: an empty value must
    not replace the file's.  replay is a path: tested for emptiness here, as a string.
    """
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    overrides = {name: arg(name) for name in ("model_path", "device") if arg(name)}
    nodes = [LifecycleNode(package="icnet_ros", executable="segment", name="icnet", namespace="",
                           output="screen", parameters=[arg("params_file"), overrides], remappings=[
                               ("image", arg("image_topic")), ("image/compressed", arg("image_topic") + "/compressed"),
                               ("camera_info", arg("camera_info_topic"))])]
    if arg("replay"):
        nodes.append(Node(package="icnet_ros", executable="play", name="play", output="screen",
                          parameters=[{"source": arg("replay"), "loop": True}],
                          remappings=[("image", arg("image_topic")), ("camera_info", arg("camera_info_topic"))]))
    return nodes


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare("icnet_ros"), "config", "icnet.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="image", description="Camera image topic."),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info",
                              description="CameraInfo topic (intrinsics for the drivable grid)."),
        DeclareLaunchArgument("params_file", default_value=default_params, description="Node parameters."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Checkpoint; empty: the params file's (the shipped model)."),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty: the params file's."),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Open rviz2 with config/icnet.rviz."),
        DeclareLaunchArgument("replay", default_value="",
                              description="A folder of images or a bag: also start `play` feeding the node."),
        OpaqueFunction(function=_nodes),
        Node(package="rviz2", executable="rviz2", name="rviz2", condition=IfCondition(LaunchConfiguration("use_rviz")),
             arguments=["-d", PathJoinSubstitution([FindPackageShare("icnet_ros"), "config", "icnet.rviz"])]),
    ])
