"""
ROS bags, read with ``rosbags`` (no ROS install needed): ROS 1 ``.bag``, ROS 2 sqlite3 and MCAP.

``reader``: open a bag (or a cut-off one, through ``recover``), its topics, stamps and the
camera stream ``play`` replays; ``dataset``: training pairs (an image topic and a mask
topic matched by stamp); ``recover``: a bag cut off by a crash, read up to its last whole
message by the scanner of its format: ``ros1_scan``, ``mcap_scan``, ``sqlite_scan``.
"""
