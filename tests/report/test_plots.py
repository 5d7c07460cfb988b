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

    ds = SimpleNamespace(name="toy", x_test=torch.randn(9, 1, 20), y_test=torch.arange(9) % 3, n_classes=3,
                         classes=["a", "b", "c"])
    y = torch.tensor(conditional_classes, dtype=torch.long).repeat_interleave(2)
    fake_uncond = torch.randn(4, 1, 20) if len(conditional_classes) != 1 else torch.zeros(0, 1, 20)
    sample_plot(tmp_path / "s.png", fake_uncond, ds, torch.randn(len(y), 1, 20), y)
    height = matplotlib.image.imread(tmp_path / "s.png").shape[0]
    assert height == round(100 * 1.9 * max(rows, 1.5))


def test_stage1_plots_draw_every_figure_from_the_model_and_the_logs(tmp_path):
    from types import SimpleNamespace

    model = create_model("vqvae", length=64, d=8, n_resnet_blocks=1).eval()
    ds = SimpleNamespace(name="toy", y_test=torch.arange(6) % 2, classes=[1.0, 2.0])
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
    assert md.startswith("# vqvae on GunPoint\n") and "| svm_accuracy | 0.7133 | test accuracy (fraction)" in md
    assert "| steps | 500 | optimiser steps run |" in md and "| fid | nan | Fréchet distance" in md


def _captured(monkeypatch):
    """The figures the plot functions save, by file name (kept open for inspection)."""
    import tsvq.report.plots as plots
    figs = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path, **kw: figs.__setitem__(path.name, fig))
    return figs


def test_sample_plot_labels_classes_and_shares_y(monkeypatch, tmp_path):
    # A class-sorted test split (as ArrowHead): the "all classes" panel still shows every class;
    # titles use the dataset's labels (1, not 1.0); real and generated panels share their y-axis.
    from types import SimpleNamespace
    figs = _captured(monkeypatch)
    y = torch.arange(3).repeat_interleave(10)  # 10 series of class 0, then 10 of 1, then 10 of 2
    x = torch.stack([torch.full((1, 20), float(c)) + 0.01 * i for i, c in enumerate(y)])
    ds = SimpleNamespace(name="toy", x_test=x, y_test=y, n_classes=3, classes=[1.0, 2.0, 3.0])
    sample_plot(tmp_path / "s.png", 10 * torch.randn(6, 1, 20), ds, torch.randn(2, 1, 20), torch.tensor([1, 1]))
    axes = figs["s.png"].axes
    shown = {round(line.get_ydata()[0]) for line in axes[0].lines}
    assert shown == {0, 1, 2}
    assert [ax.get_title() for ax in axes] == ["real test: all classes (8 series)", "generated: all classes (6 series)",
                                              "real test: class 2 (8 series)", "generated: class 2 (2 series)"]
    assert axes[0].get_ylim() == axes[1].get_ylim() and axes[2].get_ylim() == axes[3].get_ylim()
    assert axes[0].get_ylabel() == "value" and axes[-1].get_xlabel() == "time step"


@pytest.mark.parametrize("n_classes", [3, 60])
def test_latent_pca_names_classes_or_uses_a_colour_bar(monkeypatch, tmp_path, n_classes):
    from types import SimpleNamespace
    figs = _captured(monkeypatch)
    model = create_model("vqvae", length=64, d=8, n_resnet_blocks=1).eval()
    y = torch.arange(120) % n_classes
    ds = SimpleNamespace(name="toy", y_test=y, classes=[float(c + 1) for c in range(n_classes)])
    stage1_plots(tmp_path, model, ds, torch.randn(120, 1, 64), torch.randn(120, 8), None, [])
    fig = figs["latent_pca.png"]
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    if n_classes <= 10:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1", "2", "3"] and len(fig.axes) == 1
    else:
        assert ax.get_legend() is None and len(fig.axes) == 2  # the colour bar
    titles = [ax.get_title() for ax in figs["reconstructions.png"].axes]
    assert len({t.split("(class ")[1] for t in titles}) == min(4, n_classes)  # one series per class shown
