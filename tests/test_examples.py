import importlib.util

from helpers import REPO, UCR_DIR, requires_ucr


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@requires_ucr("GunPoint")
def test_train_vq_ucr_runs_on_real_data(capsys):
    result = _load("train_vq_ucr").main(["--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--epochs", "20"])
    out = capsys.readouterr().out
    assert "| GunPoint |" in out
    assert 0 < result["mse"] < 1.0  # better than predicting the (scaled) mean
    assert 1.0 <= result["perplexity"] <= 32
