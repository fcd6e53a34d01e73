"""One whole bench run: the models (each in a worker process), then the node phases."""

from __future__ import annotations

import os

from . import models as zoo
from .config import BenchConfig, log
from .report import describe_device
from .workers import bench_matmul, bench_models, bench_sizes, bench_turns


def run(config: BenchConfig) -> dict:
    """
    Run the whole bench and return the report.

    The report has the JSON shape of the issue (``report.public`` adds the targets'
    ratios), plus '_'-keys that ``main`` prints but does not write.  BenchError names
    an option that cannot be used.
    """
    cfg = config.resolved()
    shipped = cfg.checkpoint or zoo.shipped_checkpoint()
    notes = (f"Shipped model: {shipped}." if shipped else
             "No shipped model installed: every model has random weights (speed does not depend on them).")
    if os.getloadavg()[0] > 0.5 and not cfg.cuda:
        notes += f" Load average at start {os.getloadavg()[0]:.2f}: other work shared the CPU."
    log(f"bench: {describe_device(cfg.device)}; {notes}")
    matmul = bench_matmul(cfg)          # the practical ceiling, on the same machine in the same run
    log(f"bench: matmul {matmul['gflops']:.1f} GFLOP/s")
    rows = bench_models(cfg, shipped)
    report = {"device": describe_device(cfg.device), "matmul_gflops": matmul["gflops"], "models": rows,
              "turns": bench_turns(cfg, shipped, rows), "sizes": bench_sizes(cfg, shipped, rows), "map": None,
              "node": None, "node_every": None, "node_planner": None, "soak": {"seconds": 0}, "_notes": notes,
              "_matmul": matmul}
    if cfg.map_cost:
        from .map_cost import map_report

        report.update(map_report(cfg.quick))
    if cfg.node:
        from .node_phases import node_report

        report.update(node_report(cfg, shipped))
    return report
