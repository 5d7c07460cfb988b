import json
import os
import subprocess
import sys

import pytest
import torch

import tsvq
from tsvq.cli.main import main as cli_main


def test_extension_loaded_when_required():
    # CI sets TSVQ_REQUIRE_EXTENSION=1 so that a broken build cannot hide behind the fallback.
    if os.environ.get("TSVQ_REQUIRE_EXTENSION") == "1":
        assert tsvq.has_ops(), tsvq.info()["extension_error"]


def test_info_reports_build():
    info = tsvq.info()
    assert info["torch"] == torch.__version__
    if info["extension"]:
        assert {"nearest_code", "code_stats", "ema_codebook_update_", "stft", "istft", "barlow_twins_loss"} <= set(info["ops"])
        assert not [op for op in info["ops"] if op.startswith("_")]  # helper ops are not for users
        assert info["cpu_kernels"].startswith(("x86-64", "compiler default"))
        assert info["built_against_torch"] == torch.__version__.split("+")[0]
        assert info["openmp"] is True


def test_cli_info(capsys):
    assert cli_main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["torch"] == torch.__version__


def test_fallback_without_extension_warns_once_and_works():
    code = (
        "import warnings, torch, tsvq\n"
        "from tsvq.nn import VectorQuantizer\n"
        "assert not tsvq.has_ops()\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    vq = VectorQuantizer(4, 8)\n"
        "    for _ in range(3): q, i, l = vq(torch.randn(2, 5, 4))\n"
        "msgs = [str(x.message) for x in w if 'tsvq._C' in str(x.message)]\n"
        "assert len(msgs) == 1 and 'pip install --no-build-isolation' in msgs[0], msgs\n"
        "assert q.shape == (2, 5, 4) and i.shape == (2, 5)\n"
        "print(tsvq.info()['extension_error'])\n"
    )
    env = dict(os.environ, TSVQ_DISABLE_EXTENSION="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "disabled" in out.stdout


def test_cuda_tensors_take_the_reference_in_a_build_without_cuda_kernels(monkeypatch):
    # A CUDA torch with no nvcc at install time builds the CPU kernels only: the op wrappers then
    # send CUDA tensors to the reference (one warning naming the fix) instead of failing in the
    # dispatcher with "could not run tsvq::... with arguments from the CUDA backend".
    from tsvq import _extension

    class FakeC:
        cuda = False

        def has_cuda(self):
            return self.cuda

    fake = FakeC()
    monkeypatch.setattr(_extension, "_C", fake)
    monkeypatch.setattr(_extension, "_WARNED_CUDA", False)
    assert _extension.has_ops() and _extension.has_ops("cpu") and _extension.has_ops(torch.device("meta"))
    assert not _extension.has_ops("cuda") and not _extension.has_ops(torch.device("cuda", 1))
    with pytest.warns(RuntimeWarning, match="without CUDA kernels"):
        _extension.warn_if_missing(torch.device("cuda"))
    fake.cuda = True
    assert _extension.has_ops("cuda")
    with _extension.reference_ops():
        assert not _extension.has_ops("cpu")
