import gzip
import shutil

import numpy as np
import pytest
import torch
from helpers import SHARED, UCR_DIR, requires_ucr

from tsvq.data import GlobalScaler, load_ucr


@requires_ucr("GunPoint")
def test_gunpoint_official_split():
    d = load_ucr("GunPoint", UCR_DIR)
    assert d.x_train.shape == (50, 1, 150) and d.x_test.shape == (150, 1, 150)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert list(d.classes) == [1.0, 2.0] and set(d.y_test.tolist()) == {0, 1}
    raw = np.loadtxt(UCR_DIR / "GunPoint" / "GunPoint_TRAIN.tsv", delimiter="\t")
    np.testing.assert_allclose(d.x_train[:, 0].numpy(), raw[:, 1:], rtol=1e-6)
    np.testing.assert_array_equal(d.classes[d.y_train.numpy()], raw[:, 0])


@requires_ucr("ECG200")
def test_labels_are_encoded_keeping_originals():
    d = load_ucr("ECG200", UCR_DIR)
    assert list(d.classes) == [-1.0, 1.0] and d.n_classes == 2


def test_gz_variable_length_and_errors(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    rows = "1\t0.0\t1.0\t2.0\t3.0\n2\t5.0\t6.0\tNaN\tNaN\n"
    for split in ("TRAIN", "TEST"):
        with gzip.open(folder / f"Toy_{split}.tsv.gz", "wt") as f:
            f.write(rows)
    d = load_ucr("Toy", tmp_path)  # uneven lengths (NaN padding): resampled to the longest
    torch.testing.assert_close(d.x_train[1, 0], torch.tensor([5.0, 5 + 1 / 3, 5 + 2 / 3, 6.0]))
    torch.testing.assert_close(d.x_train[0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert d.raw_lengths == (2, 4)
    d = load_ucr("Toy", tmp_path, resample_to=3)
    torch.testing.assert_close(d.x_train[1, 0], torch.tensor([5.0, 5.5, 6.0]))
    with pytest.raises(FileNotFoundError, match="dataset 'Nope' not found: .*Offline through aeon: .*GunPoint.*Toy"):
        load_ucr("Nope", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"dataset 'toi' not found \(did you mean Toy\?\)"):
        load_ucr("toi", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"\(did you mean GunPoint\?\)"):
        load_ucr("Gunpoint", tmp_path)
    shutil.move(folder / "Toy_TEST.tsv.gz", tmp_path / "elsewhere.gz")
    with pytest.raises(FileNotFoundError, match="TEST"):
        load_ucr("Toy", tmp_path, resample_to=3)
    assert load_ucr("Toy", tmp_path, resample_to=3, require_test=False).x_test is None


def test_missing_root_names_the_variable(monkeypatch):
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="TSVQ_DATA_DIR"):
        load_ucr("NotAnAeonDataset")


@pytest.mark.skipif(not (SHARED / "data" / "UCRArchive_2018_train_only" / "Wafer").exists(), reason="no train-only data")
def test_train_only_copy():
    d = load_ucr("Wafer", SHARED / "data" / "UCRArchive_2018_train_only", require_test=False)
    assert d.x_train.shape == (1000, 1, 152) and d.x_test is None


def test_global_scaler_per_channel():
    x = torch.stack([torch.randn(10, 20) * 3 + 2, torch.randn(10, 20) * 100 - 50], 1)
    s = GlobalScaler().fit(x)
    z = s.transform(x)
    for c in range(2):  # each channel standardised with its own statistics
        assert abs(z[:, c].mean().item()) < 1e-5 and abs(z[:, c].std().item() - 1) < 1e-4
    torch.testing.assert_close(s.inverse_transform(z), x)
    one = GlobalScaler().fit(x[:, :1])  # one channel: the TimeVQVAE scaling over the whole matrix
    assert one.mean == [float(x[:, 0].mean())] and one.std == [float(x[:, 0].std())]
    old = GlobalScaler()  # a scaler.json written with scalar statistics still loads
    old.load_state_dict({"mean": 2.0, "std": 3.0, "eps": 1e-8})
    torch.testing.assert_close(old.transform(torch.full((1, 1, 4), 5.0)), torch.ones(1, 1, 4))
    with pytest.raises(ValueError, match="3 channels, the scaler was fitted on 2"):
        s.transform(torch.zeros(1, 3, 4))


def test_global_scaler_round_trip():
    x = torch.randn(10, 1, 20) * 3 + 2
    s = GlobalScaler().fit(x)
    z = s.transform(x)
    assert abs(z.mean().item()) < 1e-5 and abs(z.std().item() - 1) < 1e-4
    torch.testing.assert_close(s.inverse_transform(z), x)
    s2 = GlobalScaler()
    s2.load_state_dict(s.state_dict())
    torch.testing.assert_close(s2.transform(x), z)


@requires_ucr("GunPoint")
def test_aeon_gunpoint_equals_the_ucr_2018_files(monkeypatch):
    pytest.importorskip("aeon")
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    from_aeon = load_ucr("GunPoint")  # not on disk: aeon's bundled copy, offline
    on_disk = load_ucr("GunPoint", UCR_DIR)
    assert torch.equal(from_aeon.x_train, on_disk.x_train) and torch.equal(from_aeon.x_test, on_disk.x_test)
    assert torch.equal(from_aeon.y_train, on_disk.y_train) and torch.equal(from_aeon.y_test, on_disk.y_test)
    assert list(from_aeon.classes) == list(on_disk.classes)


def test_missing_dataset_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="_TRAIN.tsv"):
        load_ucr("NotADataset", tmp_path)


def test_check_name_refuses_case_typos_only(tmp_path):
    # A name that differs only in case from one on disk or shipped by aeon is a typo no download can
    # satisfy; a similar but different name (ECG5000 next to ECG200) is left to aeon.
    from tsvq.data.catalog import check_name
    (tmp_path / "ECG200").mkdir()
    (tmp_path / "ECG200" / "ECG200_TRAIN.tsv").write_text("1\t0.5\t0.6\n")
    check_name("ECG200", tmp_path)
    check_name("ECG5000", tmp_path)
    check_name("Adiac", None)
    with pytest.raises(FileNotFoundError, match=r"'ecg200' not found \(did you mean ECG200\?\)"):
        check_name("ecg200", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"did you mean GunPoint\?.*names are case-sensitive"):
        check_name("GUNPOINT", None)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_name("GunPoint", tmp_path / "missing")
