"""Running a timed call on a thread of its own, as the node's worker runs the engine."""

from __future__ import annotations

import threading


def in_thread(fn, *args):
    """
    fn(*args) on a fresh thread, as the node's worker runs the engine.

    On this project's loaded 2-core machine the same engine ran ~6x slower on the
    thread that first ran torch than on a later thread (both threads of torch's pool
    spinning), so engine, models and node are all timed the same way: built on the
    main thread, run on another.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # re-raised on the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="bench-worker")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
