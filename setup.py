from glob import glob

from setuptools import find_packages, setup

package_name = "icnet_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        ("share/" + package_name + "/models", glob("models/*.pt") + glob("models/*.safetensors")
         + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="icnet_ros maintainers",
    maintainer_email="maintainers@icnet-ros.invalid",
    description="ICNet real-time road segmentation for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "segment = icnet_ros.ros.node:main",
            "play = icnet_ros.ros.player:main",
            "train = icnet_ros.train:main",
            "evaluate = icnet_ros.evaluate:main",
            "export = icnet_ros.export:main",
            "bench = icnet_ros.bench:main",
            "demo = icnet_ros.demo:main",
        ],
    },
)
