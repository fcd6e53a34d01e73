"""ros2 launch icnet_ros segment.launch.py [image_topic:=/camera/image_raw] [replay:=<folder or bag>]
[use_rviz:=true] [model_path:=...] [device:=cuda] [params_file:=...]

Starts the `icnet` segmentation node (it configures and activates itself: autostart),
optionally `play` feeding it from a folder or bag, and optionally rviz2.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    # model_path and device override the params file only when given
    overrides = {name: arg(name) for name in ("model_path", "device") if arg(name)}
    remappings = [("image", arg("image_topic")), ("image/compressed", arg("image_topic") + "/compressed"),
                  ("camera_info", arg("camera_info_topic"))]
    nodes = [Node(package="icnet_ros", executable="segment", name="icnet", output="screen",
                  parameters=[arg("params_file"), overrides], remappings=remappings)]
    if arg("replay"):
        nodes.append(Node(package="icnet_ros", executable="play", name="play", output="screen",
                          parameters=[{"source": arg("replay"), "loop": True}],
                          remappings=[("image", arg("image_topic")), ("camera_info", arg("camera_info_topic"))]))
    if arg("use_rviz").lower() in ("true", "1", "yes"):
        rviz_config = PathJoinSubstitution([FindPackageShare("icnet_ros"), "config", "icnet.rviz"])
        nodes.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                          arguments=["-d", rviz_config.perform(context)]))
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
    ])
