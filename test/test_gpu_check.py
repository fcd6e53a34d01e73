"""What of ``make gpu-check`` (icnet_ros/tools/gpu_check.py) runs without a GPU: its verdicts, table and exit codes."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from icnet_ros.tools import gpu_check as gc


def test_without_cuda_one_line_and_its_own_exit_code(capfd):
    assert gc.main(["--out", "unused"]) == gc.NO_CUDA == 77
    out, err = capfd.readouterr()
    assert out == "" and err.strip().count("\n") == 0
    assert err.startswith("gpu-check: no CUDA device on this machine")


def test_table_and_exit_code_follow_the_steps():
    ok = [gc.Outcome("torch", "ok", 1.2, "torch 2"), gc.Outcome("torchrun", "skipped", 0.0, "one GPU")]
    assert gc.exit_code(ok) == 0
    failed = ok + [gc.Outcome("bench", "FAILED", 61.0, "2 rows failed")]
    assert gc.exit_code(failed) == 1
    lines = gc.table(failed).splitlines()
    assert lines[0].split() == ["step", "result", "seconds", "detail"] and set(lines[1]) == {"-"}
    assert lines[4].split()[:3] == ["bench", "FAILED", "61"] and lines[4].endswith("2 rows failed")


def test_a_step_that_raises_is_a_failed_row_and_the_others_still_run(fake_cuda, monkeypatch, tmp_path, capsys):
    def broken(work):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")

    monkeypatch.setattr(gc, "step_nvidia_smi", broken)
    assert gc.main(["--out", str(tmp_path), "--steps", "nvidia-smi", "torch", "torchrun"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "RuntimeError: CUDA error: an illegal memory access was encountered" in out
    assert "more" not in out
    torch_row = next(line for line in out.splitlines() if line.startswith("torch "))
    assert " ok " in torch_row and "cuda:0 fake CUDA device 0 (the CPU) (8.0)" in torch_row
    assert "skipped" in next(line for line in out.splitlines() if line.startswith("torchrun"))


def test_a_failing_command_names_its_exit_and_last_line(tmp_path):
    with pytest.raises(gc.StepFailed, match=r"exit 3: it broke \(log .*x.log\)"):
        gc.run([sys.executable, "-c", "print('fine'); print('it broke'); raise SystemExit(3)"], 30, tmp_path / "x.log")
    assert (tmp_path / "x.log").read_text() == "fine\nit broke\n"
    with pytest.raises(gc.StepFailed, match="timed out after 1 s"):
        gc.run([sys.executable, "-c", "import time; time.sleep(5)"], 1, tmp_path / "y.log")


def row(precision, error=None, fps=10.0, shipped=False):
    return {"name": "icnet_r18_w0.5", "height": 375, "width": 1242, "batch": 1, "precision": precision,
            "error": error, "fps": fps, "shipped": shipped}


def test_bench_verdict():
    rows = [row("fp32"), row("fp16"), row("fp16+graph", fps=50.0, shipped=True), row("bf16", "EngineError: 7.5")]
    assert gc.bench_verdict(rows, (7, 5)).endswith("fp16+graph: 50 fps")       # bf16 may fail before 8.0
    with pytest.raises(gc.StepFailed, match="1 rows failed, e.g. icnet_r18_w0.5 375x1242 b1 bf16: EngineError"):
        gc.bench_verdict(rows, (9, 0))
    with pytest.raises(gc.StepFailed, match="fp16\\+graph: RuntimeError: Inplace"):
        gc.bench_verdict([row("fp16+graph", "RuntimeError: Inplace update")], (9, 0))
    with pytest.raises(gc.StepFailed, match="no rows"):
        gc.bench_verdict([], (9, 0))


def test_agreement_and_the_synthetic_scenes(tmp_path):
    a = [np.zeros((2, 5), np.uint8)]
    b = [np.zeros((2, 5), np.uint8)]
    b[0][0, 0] = 1
    assert gc.agreement(a, b) == 0.9
    spec = gc.synthetic_folder(tmp_path, n=2, h=32, w=64)
    assert spec == f"folder:{tmp_path / 'images'}:{tmp_path / 'masks'}"
    mask = cv2.imread(str(tmp_path / "masks" / "s001.png"), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(tmp_path / "images" / "s001.png"))
    assert mask.shape == (32, 64) and set(np.unique(mask)) == {0, 1} and image.shape == (32, 64, 3)


def test_the_train_and_bench_commands_parse():
    from pathlib import Path

    from icnet_ros.bench.cli import parser
    from icnet_ros.tools.train import build_parser

    args = build_parser().parse_args(gc.train_command("folder:a:b", Path("o"), 2, "--resume")[2:])
    assert (args.device, args.max_iters, args.epochs, args.resume, args.no_amp) == ("auto", 50, 2, True, False)
    bench = parser().parse_args(["--quick", "--device", "cuda", "--no-node", "--json", "x.json"])
    assert bench.quick and bench.no_node and bench.device == "cuda"
