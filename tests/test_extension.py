import json
import os
import subprocess
import sys

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
        assert {"nearest_code", "code_stats", "ema_codebook_update_"} <= set(info["ops"])
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
