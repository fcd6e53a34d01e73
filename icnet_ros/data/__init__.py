"""
Images, masks, bags and labelled sources: reading, label maps and training augmentation.

Imports only the core helpers (classes, geometry), never the tools, training, bench or ROS.
"""
