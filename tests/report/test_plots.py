"""The run figures: one row per kind of sample, the stage-1 figures from a model and its logs."""
import csv

import pytest
import torch

from tsvq.models import create_model
from tsvq.report.plots import sample_plot, stage1_plots
from tsvq.report.tables import format_table, metrics_markdown


@pytest.mark.parametrize("conditional_classes,rows", [((), 1), ((1,), 1), ((0, 1, 2), 4)])
def test_sample_plot_has_one_row_per_kind_of_sample(tmp_path, conditional_classes, rows):
    """Unconditional models (the VAEs) get only the "all classes" row, no empty class panels."""
    import matplotlib.image
    from types import SimpleNamespace

    ds = SimpleNamespace(x_test=torch.randn(9, 1, 20), y_test=torch.arange(9) % 3, n_classes=3, classes=["a", "b", "c"])
    y = torch.tensor(conditional_classes, dtype=torch.long).repeat_interleave(2)
    fake_uncond = torch.randn(4, 1, 20) if len(conditional_classes) != 1 else torch.zeros(0, 1, 20)
    sample_plot(tmp_path / "s.png", fake_uncond, ds, torch.randn(len(y), 1, 20), y)
    height = matplotlib.image.imread(tmp_path / "s.png").shape[0]
    assert height == round(100 * 1.9 * max(rows, 1.5))


def test_stage1_plots_draw_every_figure_from_the_model_and_the_logs(tmp_path):
    from types import SimpleNamespace

    model = create_model("vqvae", length=64, d=8, n_resnet_blocks=1).eval()
    ds = SimpleNamespace(y_test=torch.arange(6) % 2)
    log = tmp_path / "logs" / "session1" / "metrics.csv"
    log.parent.mkdir(parents=True)
    with open(log, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["epoch", "train/loss", "train/vq", "probe/svm_accuracy"])
        w.writeheader()
        w.writerows([{"epoch": 0, "train/loss": 2.0, "train/vq": 0.5, "probe/svm_accuracy": ""},
                     {"epoch": 1, "train/loss": 1.0, "train/vq": 0.4, "probe/svm_accuracy": 0.75}])
    stage1_plots(tmp_path, model, ds, torch.randn(6, 1, 64), torch.randn(6, 8), torch.randint(0, 32, (6, 10)), [log])
    for name in ("reconstructions.png", "codebook_usage.png", "latent_pca.png", "loss_curves.png", "probe_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically


def test_tables():
    m = {"svm_accuracy": 0.71333, "steps": 500, "fid": float("nan")}
    assert format_table(m).splitlines() == ["  svm_accuracy  0.7133", "  steps         500", "  fid           nan"]
    md = metrics_markdown("vqvae on GunPoint", m)
    assert md.startswith("# vqvae on GunPoint\n") and "| svm_accuracy | 0.7133 |" in md and "| steps | 500 |" in md
