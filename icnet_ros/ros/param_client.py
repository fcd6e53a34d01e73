"""
`param`: get, set and list a running node's parameters without the ros2 command line.

A pip venv has rclpy but no `ros2`; `ros2 param set /icnet camera_pitch 0.05` becomes
`param set /icnet camera_pitch 0.05`.  It calls the node's parameter services
(rcl_interfaces/srv: DescribeParameters, GetParameters, SetParameters, ListParameters),
as `ros2 param` does.  A value is read as YAML (`true`, `0.5`, `"[front, left]"`) and
fitted to the parameter's declared type (an integer for a double is taken as that
double), so a typed node refuses nothing for a missing decimal point.  Errors are one
line: no such node (naming the nodes it sees), no such parameter, a value of the wrong
type, the node's own refusal (its reason, e.g. a value out of range).
"""

from __future__ import annotations

import argparse
import os
import sys

# ROS is imported where it is used, not here: `param --help` works without a ROS install.


class ParamError(RuntimeError):
    """What went wrong, in one line."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="param", description="Get, set or list a running node's parameters (ros2 param's equivalent for a "
                                  "venv without the ros2 command line).",
        epilog="examples: param set /icnet camera_pitch 0.05 | param get /icnet drivable_threshold | "
               "param list /icnet.  Docs: the icnet_ros sources' docs/venv.md and docs/node.md (parameters).")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node (default 5)")
    sub = p.add_subparsers(dest="verb", required=True, metavar="{set,get,list}")
    s = sub.add_parser("set", help="set one parameter: param set NODE NAME VALUE")
    s.add_argument("node", help="the node's full name, e.g. /icnet")
    s.add_argument("name")
    s.add_argument("value", help="YAML: 0.05, true, text, '[front, left]'")
    g = sub.add_parser("get", help="print one parameter's value: param get NODE NAME")
    g.add_argument("node")
    g.add_argument("name")
    ls = sub.add_parser("list", help="print every parameter and its value: param list NODE")
    ls.add_argument("node")
    return p


def type_name(kind: int) -> str:
    from rcl_interfaces.msg import ParameterType as T

    return {T.PARAMETER_BOOL: "a bool", T.PARAMETER_INTEGER: "an integer", T.PARAMETER_DOUBLE: "a double",
            T.PARAMETER_STRING: "a string", T.PARAMETER_STRING_ARRAY: "a list of strings"}.get(kind, f"of type {kind}")


def fit(name: str, text: str, kind: int):
    """Return the value text stands for, as a parameter of this type; ParamError when it is not one."""
    from rcl_interfaces.msg import ParameterType as _T
    import yaml

    if kind == _T.PARAMETER_STRING:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if kind == _T.PARAMETER_DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind == _T.PARAMETER_STRING_ARRAY and isinstance(value, list):
        value = [str(v) for v in value]
    expected = {_T.PARAMETER_BOOL: bool, _T.PARAMETER_INTEGER: int, _T.PARAMETER_DOUBLE: float,
                _T.PARAMETER_STRING_ARRAY: list}.get(kind)
    if expected is not None and type(value) is not expected:
        raise ParamError(f"parameter '{name}' is {type_name(kind)}; {text!r} is not one")
    return value


class Client:
    """One node's parameter services, called from a short-lived node of our own."""

    def __init__(self, node_name: str, timeout: float):
        import rclpy

        self.rclpy = rclpy
        self.target = node_name if node_name.startswith("/") else "/" + node_name
        self.timeout = timeout
        self.node = rclpy.create_node("icnet_param_client")

    def close(self) -> None:
        self.node.destroy_node()

    def call(self, srv_type, service: str, request):
        client = self.node.create_client(srv_type, f"{self.target}/{service}")
        try:
            if not client.wait_for_service(timeout_sec=self.timeout):
                raise ParamError(self._no_node())
            future = client.call_async(request)
            self.rclpy.spin_until_future_complete(self.node, future, timeout_sec=self.timeout)
            if not future.done():
                raise ParamError(f"{self.target} did not answer {service} within {self.timeout:g} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def _no_node(self) -> str:
        seen = sorted(ns.rstrip("/") + "/" + n for n, ns in self.node.get_node_names_and_namespaces()
                      if n != "icnet_param_client")
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        return (f"no node {self.target} answers within {self.timeout:g} s on ROS_DOMAIN_ID {domain}; nodes seen: "
                f"{', '.join(seen) or 'none'} (is segment running, with this ROS_DOMAIN_ID?)")

    def kind(self, name: str) -> int:
        from rcl_interfaces.msg import ParameterType
        from rcl_interfaces.srv import DescribeParameters

        found = self.call(DescribeParameters, "describe_parameters", DescribeParameters.Request(names=[name]))
        if not found.descriptors or found.descriptors[0].type == ParameterType.PARAMETER_NOT_SET:
            raise ParamError(f"{self.target} has no parameter '{name}' (param list {self.target} lists them)")
        return found.descriptors[0].type

    def get(self, names: list[str]) -> list:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        values = self.call(GetParameters, "get_parameters", GetParameters.Request(names=names)).values
        return [parameter_value_to_python(v) for v in values]

    def set_value(self, name: str, kind: int, value) -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        msg = Parameter(name, Parameter.Type(kind), value).to_parameter_msg()   # typed: [] is a string array too
        (result,) = self.call(SetParameters, "set_parameters", SetParameters.Request(parameters=[msg])).results
        if not result.successful:
            raise ParamError(f"{self.target} refused {name} = {value!r}: {result.reason}")

    def names(self) -> list[str]:
        from rcl_interfaces.srv import ListParameters

        return sorted(self.call(ListParameters, "list_parameters", ListParameters.Request()).result.names)


def run(args, out=sys.stdout) -> None:
    client = Client(args.node, args.timeout)
    try:
        if args.verb == "set":
            kind = client.kind(args.name)
            value = fit(args.name, args.value, kind)
            client.set_value(args.name, kind, value)
            print(f"set {client.target} {args.name} = {value!r}", file=out)
        elif args.verb == "get":
            client.kind(args.name)        # names a parameter the node lacks
            print(repr(client.get([args.name])[0]), file=out)
        else:
            names = client.names()
            for name, value in zip(names, client.get(names)):
                print(f"{name}: {value!r}", file=out)
    finally:
        client.close()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import rclpy

    rclpy.init(args=[])
    try:
        run(args)
    except ParamError as e:
        print(f"param: error: {e}", file=sys.stderr)
        return 1
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
