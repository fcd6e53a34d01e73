"""
The offline commands (train, evaluate, export, demo, preview) and their shared arguments.

Each is ``python -m icnet_ros.tools.NAME`` and a console script (setup.py).
"""
