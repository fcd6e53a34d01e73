"""
The node's parameters on the ROS side: descriptors, declaring them, live changes.

The descriptors (type, description, read-only, range, choices) come from
icnet_ros/node_config.py's table.  Declaring them keeps a bad value given at start for
configure to refuse, naming it, instead of a crash.  A live change (`ros2 param set`) is
checked as configure checks (node_config.with_changes) and, once accepted, replaces the
node's NodeConfig, which the worker takes per batch.
"""

from __future__ import annotations

import threading

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from .. import node_config
from ..node_config import CHOICES, ConfigError, NodeConfig, Param, PARAMS

_T = ParameterType
_KINDS = {bool: _T.PARAMETER_BOOL, int: _T.PARAMETER_INTEGER, float: _T.PARAMETER_DOUBLE,
          str: _T.PARAMETER_STRING, list: _T.PARAMETER_STRING_ARRAY}


def descriptor(p: Param) -> ParameterDescriptor:
    kind = _KINDS[type(p.default)]
    d = ParameterDescriptor(name=p.name, type=kind, description=p.description, read_only=p.read_only)
    if p.name in CHOICES:
        d.additional_constraints = "one of: " + ", ".join(CHOICES[p.name])
    if p.bounds and kind == _T.PARAMETER_INTEGER:
        d.integer_range = [IntegerRange(from_value=p.bounds[0], to_value=p.bounds[1], step=1)]
    elif p.bounds:
        d.floating_point_range = [FloatingPointRange(from_value=p.bounds[0], to_value=p.bounds[1])]
    return d


def declare(node: Node, p: Param, rejected: dict) -> None:
    """
    Declare p on node with its descriptor; a refused value goes into rejected.

    Refused: a value given (params file, command line) that node_config refuses.  The
    parameter holds its default meanwhile.
    """
    # Declared first with any type and no range, so that a bad value is seen here: declaring
    # with the full descriptor would raise in the node's __init__, and rclpy has no public way
    # to read the refused override back.  set_descriptor then applies the real descriptor,
    # falling back to the default where the value does not fit it.
    loose = ParameterDescriptor(name=p.name, description=p.description, dynamic_typing=True)
    value = node.declare_parameter(p.name, p.default, loose).value
    try:
        node_config.check_value(p.name, value)
    except ConfigError:
        rejected[p.name] = value
    node.set_descriptor(p.name, descriptor(p), Parameter(p.name, value=p.default).get_parameter_value())


def watch(node: Node, check, apply) -> None:
    """
    Call check(parameters) on every change (it may refuse), then apply(parameters) once accepted.

    Iron and newer: apply runs after rclpy has stored the new values (post-set callback).
    Humble has only on-set callbacks, run before the values are stored: there one callback
    checks, then applies what it accepted (the node's only on-set callback, so nothing can
    refuse the change after it is applied).
    """
    if hasattr(node, "add_post_set_parameters_callback"):
        node.add_on_set_parameters_callback(check)
        node.add_post_set_parameters_callback(apply)
        return

    def check_then_apply(parameters):
        result = check(parameters)
        if result.successful:
            apply(parameters)
        return result

    node.add_on_set_parameters_callback(check_then_apply)


class LiveParameters:
    """
    The node's parameters: declared at start, the NodeConfig built at configure, live changes.

    ``node.config`` is the NodeConfig in use (None outside configure .. cleanup); ``lock``
    makes configure and live changes take turns, so no change is lost in between.
    """

    def __init__(self, node: Node):
        self.node = node
        self.lock = threading.Lock()
        self.rejected: dict = {}       # name -> bad value given at start: configure refuses it
        for p in PARAMS:
            declare(node, p, self.rejected)
        watch(node, self.check, self.apply)

    def values(self) -> dict:
        return {p.name: self.node.get_parameter(p.name).value for p in PARAMS}

    def build(self) -> NodeConfig:
        """Return the NodeConfig of the current values (configure), naming a refused one first."""
        return node_config.from_params({**self.values(), **self.rejected})

    @staticmethod
    def _changes(parameters) -> dict:
        names = {p.name for p in PARAMS}
        return {p.name: p.value for p in parameters if p.name in names}   # not rclpy's use_sim_time

    def check(self, parameters) -> SetParametersResult:
        # Ranges and read-only are the descriptors' (rclpy checks them first); the rest, and
        # the grid or calib file a change touches, is node_config's, as at configure.
        changes = self._changes(parameters)
        try:
            if changes:
                node_config.with_changes(self.node.config or node_config.build(self.values()), changes)
        except ConfigError as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def apply(self, parameters) -> None:
        changes = self._changes(parameters)
        with self.lock:
            for name in changes:
                self.rejected.pop(name, None)    # a good value replaces a refused one
            if self.node.config is None or not changes:
                return
            try:
                self.node.config = node_config.with_changes(self.node.config, changes)
            except ConfigError as e:   # only if the calib file went away since the check just now
                self.node.get_logger().error(f"{e}; the previous values stay in use")
