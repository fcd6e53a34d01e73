"""
icnet_ros: ICNet road segmentation for ROS 2.

The core imports no rclpy; the ROS layer lives in ``icnet_ros.ros``.  Subpackages, by
concern: ``nn`` (the network), ``inference`` (checkpoints, deploy path, engine),
``data`` (images, masks, bags, label maps), ``training``, ``tools`` (the offline
commands), ``bench`` and ``ros``.

The names a user imports from Python are here, loaded on first use so that
``import icnet_ros`` pulls in neither torch nor ROS::

    from icnet_ros import Engine, load_checkpoint
    model, meta, _ = load_checkpoint("models/icnet_road.pt")
    engine = Engine(model, meta)
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "Engine": "icnet_ros.inference.engine",
    "EngineError": "icnet_ros.inference.engine",
    "load_checkpoint": "icnet_ros.inference.checkpoint",
    "save_checkpoint": "icnet_ros.inference.checkpoint",
    "ModelMeta": "icnet_ros.inference.checkpoint",
    "ICNet": "icnet_ros.nn.model",
    "icnet": "icnet_ros.nn.model",
    "icnet_r50": "icnet_ros.nn.model",
    "icnet_r18": "icnet_ros.nn.model",
    "icnet_effl0": "icnet_ros.nn.model",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value   # the next lookup skips this function
        return value
    raise AttributeError(f"module 'icnet_ros' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
