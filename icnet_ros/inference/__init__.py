"""
From a frame to class maps: checkpoints, the deploy path, the engine and ONNX Runtime.

Imports the network and the core helpers, never the tools, training, bench or ROS layer.
"""
