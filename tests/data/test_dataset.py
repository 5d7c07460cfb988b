"""The dataset type and its readers: arrays, .npz / .npy, wide tables, UEA .ts, aeon by name."""
import shutil

import numpy as np
import pytest
import torch

from tsvq.data import from_arrays, load_dataset, load_named, load_path


def _aeon_file(name: str, split: str):
    aeon = pytest.importorskip("aeon.datasets")
    from pathlib import Path

    return Path(aeon.__file__).parent / "data" / name / f"{name}_{split}.ts"


def test_from_arrays_layouts_and_labels():
    rng = np.random.default_rng(0)
    x2 = rng.normal(size=(6, 20))
    d = from_arrays(x2, np.array(["b", "a", "b", "a", "b", "a"]), x2[:2], np.array(["a", "b"]), name="toy")
    assert d.x_train.shape == (6, 1, 20) and d.x_train.dtype == torch.float32
    assert list(d.classes) == ["a", "b"] and d.y_train.tolist() == [1, 0, 1, 0, 1, 0] and d.y_test.tolist() == [0, 1]
    torch.testing.assert_close(d.x_train[:, 0], torch.from_numpy(x2).float())
    x3 = torch.randn(5, 3, 16)
    d = from_arrays(x3)  # unlabelled, no test split
    assert not d.labelled and d.n_classes == 0 and d.x_test is None and torch.equal(d.x_train, x3)
    d = from_arrays(x3, [1, 2, 1, 2, 2])
    assert list(d.classes) == [1, 2] and d.summary()["classes"] == {"train": {"1": 2, "2": 3}}


def test_uneven_lengths_resample_to_the_longest_or_the_given_length():
    series = [np.arange(4.0), np.array([5.0, 6.0]), np.array([1.0, np.nan, np.nan, np.nan])[:1]]
    d = from_arrays(series)
    assert d.x_train.shape == (3, 1, 4) and d.raw_lengths == (1, 4)
    torch.testing.assert_close(d.x_train[0, 0], torch.arange(4.0))  # already the longest: unchanged
    torch.testing.assert_close(d.x_train[1, 0], torch.tensor([5.0, 5 + 1 / 3, 5 + 2 / 3, 6.0]))
    torch.testing.assert_close(d.x_train[2, 0], torch.ones(4))
    padded = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 6.0, np.nan, np.nan]])  # trailing NaN = padding
    torch.testing.assert_close(from_arrays(padded, length=3).x_train[:, 0], torch.tensor([[0.0, 1.5, 3.0], [5.0, 5.5, 6.0]]))
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        from_arrays(padded, length=1)


def test_nan_inside_a_series_is_refused_or_interpolated():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, np.nan, 7.0, 8.0]])
    with pytest.raises(ValueError, match=r"x_train: series 1 holds NaN inside the series \(at time step 1\); set nan=interpolate"):
        from_arrays(x)
    d = from_arrays(x, nan="interpolate")
    torch.testing.assert_close(d.x_train[1, 0], torch.tensor([5.0, 6.0, 7.0, 8.0]))
    assert d.interpolated == 1
    with pytest.raises(ValueError, match="series 0 holds no values"):
        from_arrays(np.array([[np.nan, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="series 1 holds inf"):
        from_arrays(np.array([[0.0, 1.0], [np.inf, 2.0]]))
    with pytest.raises(ValueError, match="nan must be one of"):
        from_arrays(x, nan="drop")


@pytest.mark.parametrize("bad, match", [
    (dict(x_train=np.zeros((4, 2, 8)), x_test=np.zeros((2, 3, 8))), "x_test has \\[3\\] channel\\(s\\), x_train 2"),
    (dict(x_train=np.zeros((4, 8)), y_train=[0, 1, 0, 1], x_test=np.zeros((2, 8))), "labels are present in one split only \\(y_train\\)"),
    (dict(x_train=np.zeros((4, 8)), x_test=np.zeros((2, 8)), y_test=[0, 1]), "one split only \\(y_test\\)"),
    (dict(x_train=np.zeros((4, 8)), y_train=[0, 1]), "y_train must be \\[N\\] with N = 4"),
    (dict(x_train=np.zeros((0, 8))), "x_train holds no series"),
    (dict(x_train=np.zeros((2, 2, 2, 8))), "must be \\[N, L\\] or \\[N, C, L\\]"),
    (dict(x_train=np.array([["a", "b"], ["c", "d"]])), "must hold numbers"),
    (dict(x_train=[[1.0, 2.0], "ab"]), "series 1 holds values that are not numbers"),
    (dict(x_train=[np.zeros((2, 5)), np.zeros((3, 5))]), "different channel counts \\[2, 3\\]"),
])
def test_from_arrays_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(**bad)


def test_npz_npy_and_their_errors(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 2, 12)).astype(np.float32), rng.integers(0, 2, 8)
    np.savez(tmp_path / "rec.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    d = load_dataset(tmp_path / "rec.npz")
    assert d.name == "rec" and d.x_train.shape == (8, 2, 12) and d.x_test.shape == (3, 2, 12)
    assert torch.equal(d.x_train, torch.from_numpy(x)) and d.y_train.tolist() == y.tolist()
    np.savez(tmp_path / "unlabelled.npz", x_train=x[:, 0])
    d = load_dataset(str(tmp_path / "unlabelled.npz"))
    assert d.x_train.shape == (8, 1, 12) and not d.labelled and d.x_test is None
    np.save(tmp_path / "plain.npy", x)
    assert torch.equal(load_dataset(tmp_path / "plain.npy").x_train, torch.from_numpy(x))
    np.savez(tmp_path / "typo.npz", X_train=x)
    with pytest.raises(ValueError, match=r"typo.npz must hold x_train .* found \['X_train'\]"):
        load_dataset(tmp_path / "typo.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz is empty"):
        load_dataset(tmp_path / "empty.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz not found"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown data file type"):
        load_dataset(tmp_path / "notes.json")


def test_wide_tables_with_test_sibling_and_their_errors(tmp_path):
    (tmp_path / "walk_TRAIN.csv").write_text("1,0.0,1.0,2.0\n2,3.0,4.0,5.0\n1,1.0,1.0,NaN\n")
    (tmp_path / "walk_TEST.csv").write_text("2,0.5,1.5,2.5\n")
    d = load_dataset(tmp_path / "walk_TRAIN.csv")
    assert d.name == "walk" and d.x_train.shape == (3, 1, 3) and d.x_test.shape == (1, 1, 3)
    assert list(d.classes) == [1.0, 2.0] and d.y_test.tolist() == [1] and d.raw_lengths == (2, 3)
    assert "walk_TEST.csv" in d.source
    (tmp_path / "solo.tsv").write_text("1\t0.0\t1.0\n2\t3.0\t4.0\n")
    d = load_dataset(tmp_path / "solo.tsv")
    assert d.x_test is None and d.x_train.shape == (2, 1, 2)
    (tmp_path / "ragged.csv").write_text("1,0.0,1.0,2.0\n2,3.0,4.0\n")
    with pytest.raises(ValueError, match="ragged.csv: rows have different numbers of values.*pad shorter series with NaN"):
        load_dataset(tmp_path / "ragged.csv")
    (tmp_path / "words.csv").write_text("1,0.0,abc\n")
    with pytest.raises(ValueError, match="words.csv is not a table in the UCR layout .*comma-separated"):
        load_dataset(tmp_path / "words.csv")
    (tmp_path / "blank.tsv").write_text("")
    with pytest.raises(ValueError, match="blank.tsv is empty"):
        load_dataset(tmp_path / "blank.tsv")
    (tmp_path / "nolabel.csv").write_text("NaN,1.0,2.0\n")
    with pytest.raises(ValueError, match="row 0 has no label"):
        load_dataset(tmp_path / "nolabel.csv")


def test_uea_folder_by_name_and_by_path(tmp_path):
    folder = tmp_path / "JapaneseVowels"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        shutil.copy(_aeon_file("JapaneseVowels", split), folder)
    d = load_named("JapaneseVowels", tmp_path)
    assert d.x_train.shape == (270, 12, 29) and d.x_test.shape == (370, 12, 29)  # uneven lengths 7..29
    assert d.raw_lengths == (7, 29) and d.n_classes == 9 and "JapaneseVowels_TRAIN.ts" in d.source
    assert torch.equal(load_path(folder).x_train, d.x_train)
    short = load_named("JapaneseVowels", tmp_path, length=16)
    assert short.x_train.shape == (270, 12, 16)
    (tmp_path / "bad.ts").write_text("@problemName bad\n@data\n1.0,abc,2:1\n")
    with pytest.raises(ValueError, match="bad.ts is not a readable .ts file"):
        load_dataset(tmp_path / "bad.ts")
    with pytest.raises(FileNotFoundError, match="a folder without empty_TRAIN"):
        (tmp_path / "empty").mkdir()
        load_dataset(tmp_path / "empty")


def test_aeon_multivariate_by_name(monkeypatch):
    pytest.importorskip("aeon")
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    d = load_dataset("BasicMotions")
    assert d.x_train.shape == (40, 6, 100) and d.x_test.shape == (40, 6, 100) and d.n_classes == 4
    assert d.summary()["classes"]["train"] == {"badminton": 10, "running": 10, "standing": 10, "walking": 10}
    from aeon.datasets import load_classification
    x, _ = load_classification("BasicMotions", split="train")
    torch.testing.assert_close(d.x_train, torch.from_numpy(x).float())
    jv = load_dataset("JapaneseVowels")
    assert jv.x_train.shape == (270, 12, 29) and jv.raw_lengths == (7, 29)
