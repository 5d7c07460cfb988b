"""benchmarks/harness.py: the comparisons behind `pytest benchmarks/` and `benchmarks/targets.py` check
correctness before timing, the paired timing measures what it says, and targets.py reports the targets."""
import json
import time
import types

import pytest
import torch

import tsvq
import tsvq.nn
import tsvq.ops
import harness as bench
from tsvq._extension import reference_ops
import targets

needs_ops = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")

SMALL_CASES = [
    ("nearest_code", lambda d: bench.nearest_code_case(300, 16, 8, d), ["reference_addmm", "cdist"]),
    ("layer_step", lambda d: bench.layer_step_case(2048, 16, 8, d), ["vector_quantize_pytorch"]),
    ("layer_step_rotation_trick", lambda d: bench.layer_step_case(2048, 16, 8, d, rotation_trick=True),
     ["vector_quantize_pytorch"]),
    ("nearest_code_topk", lambda d: bench.nearest_code_topk_case(300, 16, 8, 4, d), ["cdist", "addmm_topk"]),
    ("residual_vq_step", lambda d: bench.residual_vq_step_case(2048, 16, 8, 3, d), ["vector_quantize_pytorch"]),
    ("residual_vq_beam_step", lambda d: bench.residual_vq_step_case(2048, 16, 8, 3, d, beam_size=4),
     ["vector_quantize_pytorch"]),
    ("layer_step_separate_heads", lambda d: bench.layer_step_case(2048, 16, 8, d, heads=2), ["vector_quantize_pytorch"]),
    ("ema_update", lambda d: bench.ema_update_case(300, 16, 8, d), ["reference"]),
    ("stft", lambda d: bench.stft_case(6, 64, 8, d), ["torch"]),
    ("istft", lambda d: bench.istft_case(6, 64, 32, d), ["torch"]),
    ("round_trip", lambda d: bench.stft_round_trip_case(6, 64, 8, d), ["torch"]),
    ("barlow_twins", lambda d: bench.barlow_twins_case(16, 64, d), ["reference"]),
    ("vicreg", lambda d: bench.ssl_loss_case("vicreg", 8, 64, d), ["dxd"]),
    ("vibcreg", lambda d: bench.ssl_loss_case("vibcreg", 8, 64, d), ["dxd"]),
    ("training_step", lambda d: bench.training_step_case("vqvae", d, B=8, L=64), ["reference"]),
]


@needs_ops
@pytest.mark.parametrize("name,build,baselines", SMALL_CASES, ids=[c[0] for c in SMALL_CASES])
def test_case_builds_checks_and_runs(name, build, baselines, device):
    if name.startswith(("layer_step", "residual_vq")):
        pytest.importorskip("vector_quantize_pytorch")
    case = build(device)
    assert sorted(case.baselines) == sorted(baselines) and case.items > 0 and case.info["op"]
    assert device.type in case.group.split()
    for fn in [case.tsvq, *case.baselines.values()]:
        out = fn()
        assert out is None or torch.is_tensor(out) or isinstance(out, tuple)
    bench.sync(device)


@needs_ops
def test_case_rejects_a_wrong_kernel(monkeypatch):
    real = tsvq.ops.nearest_code
    monkeypatch.setattr(tsvq.ops, "nearest_code", lambda x, cb: (real(x, cb)[0].roll(1), real(x, cb)[1]))
    with pytest.raises(AssertionError, match="tsvq disagrees"):
        bench.nearest_code_case(300, 16, 8, "cpu")
    monkeypatch.setattr(tsvq.ops, "barlow_twins_loss", lambda *a: tsvq.ops.reference.barlow_twins_loss(*a) * 1.01)
    with pytest.raises(AssertionError):
        bench.barlow_twins_case(16, 64, "cpu")
    real_ema = tsvq.ops.ema_codebook_update_
    monkeypatch.setattr(tsvq.ops, "ema_codebook_update_", lambda cs, es, cb, x, idx, d, e: real_ema(cs, es, cb, x, idx, d * 0.5, e))
    with pytest.raises(AssertionError, match="ema update"):
        bench.ema_update_case(300, 16, 8, "cpu")
    for name, cls in (("vicreg", tsvq.nn.VICRegLoss), ("vibcreg", tsvq.nn.VIbCRegLoss)):
        monkeypatch.setattr(cls, "covariance_term", staticmethod(lambda z: z.pow(2).mean()))
        with pytest.raises(AssertionError, match="D x D vs Gram"):
            bench.ssl_loss_case(name, 8, 64, "cpu")
    with pytest.raises(ValueError, match="name must be one of"):
        bench.ssl_loss_case("simclr", 8, 64, "cpu")


def test_iterations_fill_a_round():
    assert bench.iterations_per_round(lambda: None) > 10
    assert bench.iterations_per_round(lambda: time.sleep(2 * bench.MIN_ROUND_S)) == 1


def test_paired_medians_time_each_function(monkeypatch):
    # A fake clock that only the timed calls move, so that the check is exact under any load (its
    # sleep-based version failed on a loaded machine): slow calls take 6 ms except one 100 ms
    # outlier, fast ones 2 ms; medians per call, rounds alternating which function goes first.
    now, order = [0.0], []
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    slow_times = iter([0.006, 0.006, 0.1] + [0.006] * 10_000)

    def slow():
        now[0] += next(slow_times)
        order.append("slow")

    def fast():
        now[0] += 0.002
        order.append("fast")

    base, ours = bench.paired_medians(slow, 1, fast, 2, rounds=5)
    assert (base, ours) == pytest.approx((0.006, 0.002))
    assert order == ["fast", "fast", "slow", "slow", "fast", "fast"] * 2 + ["fast", "fast", "slow"]
    assert bench.paired_speedup(slow, 1, fast, rounds=5) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="rounds"):
        bench.paired_medians(slow, 1, fast, 1, rounds=0)


@needs_ops
def test_run_targets_measures_and_reports(capsys, tmp_path):
    rows = bench.run_targets("cpu", rounds=1, match="n_fft=8")
    assert [r["name"] for r in rows] == ["stft BC=1024 L=1024 n_fft=8", "istft BC=1024 L=1024 n_fft=8"]
    for r in rows:
        assert r["target"] == 1.0 and r["baseline"] == "torch" and r["device"] == "cpu"
        assert r["tsvq_ms"] > 0 and r["baseline_ms"] > 0
        assert r["speedup"] == pytest.approx(r["baseline_ms"] / r["tsvq_ms"])
    table = bench.format_targets(rows + [{"name": "x", "baseline": "y", "target": 5.0, "skipped": "z is not installed"}])
    assert table.count("\n") == 4 and "| x | y |" in table and "skipped: z is not installed" in table
    assert all(f"{r['speedup']:.2f}x" in table for r in rows)

    out = tmp_path / "bench.json"
    assert targets.main(["-k", "istft BC=1024 L=1024 n_fft=8", "--rounds", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| istft BC=1024 L=1024 n_fft=8 | torch |" in printed and "never slower on a CPU" in printed
    assert [r["name"] for r in json.loads(out.read_text())] == ["istft BC=1024 L=1024 n_fft=8"]
    assert targets.main(["-k", "istft BC=1024 L=1024 n_fft=8", "--json", str(tmp_path)]) == 2  # before timing
    assert "targets.py: error: --json must be a file name" in capsys.readouterr().err


def test_targets_cover_the_spec():
    names = " ".join(t.name for t in bench.TARGETS)
    for op in ("nearest_code", "vq layer step", "stft", "istft", "barlow_twins N=512", "barlow_twins N=2048",
               "ncvqvae training step"):
        assert op in names
    assert [t.speedup for t in bench.TARGETS if t.name.startswith("istft")] == [5.0, 5.0]
    assert [t.name for t in bench.TARGETS if t.cuda_only] == ["barlow_twins N=2048 D=8192"]


@needs_ops
def test_run_targets_bad_input():
    with pytest.raises(ValueError, match="rounds"):
        bench.run_targets("cpu", rounds=0)
    with pytest.raises(ValueError, match="match: no target"):
        bench.run_targets("cpu", match="no such target")
    with pytest.raises(ValueError, match="device"):
        bench.run_targets("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            bench.run_targets("cuda")
    with pytest.raises(ValueError, match="model must be one of"):
        bench.training_step_case("nope", "cpu")
    with reference_ops(), pytest.raises(RuntimeError, match="not built"):
        bench.run_targets("cpu", match="n_fft=8")
