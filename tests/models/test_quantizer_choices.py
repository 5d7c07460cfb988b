"""The tokenizers' quantiser choices (vq / fsq / lfq / simvq): training step, codes in [0, K), decoding
from codes equals decoding the quantised latents, the prior's embeddings and sampling, and refusals."""
import pytest
import torch

from tsvq.models import create_model
from tsvq.recipes.prior import build_prior

CASES = [("vq", {}, 32), ("fsq", {"fsq_levels": (5, 4, 3)}, 60), ("lfq", {"lfq_bits": 6}, 64),
         ("simvq", {"codebook_size": 48}, 48)]


@pytest.mark.parametrize("model", ["vqvae", "ncvqvae"])
@pytest.mark.parametrize("quantizer, extra, K", CASES)
def test_quantizer_choice_trains_encodes_decodes_and_feeds_the_prior(model, quantizer, extra, K):
    torch.manual_seed(0)
    kw = dict(length=64, d=16, n_resnet_blocks=1, quantizer=quantizer, **extra)
    if model == "ncvqvae":
        kw["projector_widths"] = (32, 32)
    m = create_model(model, **kw)
    assert m.n_codes == K
    x = torch.randn(6, 1, 64)
    from tsvq.engine.module import stage1_step
    out = stage1_step(m, (x,), torch.Generator().manual_seed(0), 0, 10)
    out["loss"].backward()
    enc = [p for n, p in m.named_parameters() if "encoder" in n]
    assert all(torch.isfinite(p.grad).all() for p in enc) and any(p.grad.abs().sum() > 0 for p in enc)
    m.eval()
    z, z_q, codes = m.encode(x)
    assert codes[0].dtype == torch.int64 and codes[0].min() >= 0 and codes[0].max() < K
    torch.testing.assert_close(m.decode_indices(codes), m.decode(z_q), rtol=1e-4, atol=1e-5)
    book = m.branches[0].vq.codebook
    assert book.shape == (K, 16)
    # the codeword of a code is the quantised latent wherever that code was chosen
    flat_codes, flat_zq = codes[0].flatten(), z_q[0].permute(0, 2, 3, 1).reshape(-1, 16)
    torch.testing.assert_close(book.detach()[flat_codes], flat_zq, rtol=1e-4, atol=1e-5)
    prior = build_prior(_PriorCfg(), m, [tuple(codes[0].shape[1:])], 2)
    grids = prior.sample(3, torch.tensor([0, 1, 0]), generator=torch.Generator().manual_seed(0))
    assert grids[0].max() < K and m.decode_indices(grids).shape == (3, 1, 64)


class _PriorCfg:
    from tsvq.models import MaskGITConfig
    model_config = MaskGITConfig(hidden=32, n_layers=1, n_heads=2)


@pytest.mark.parametrize("overrides, message", [
    (dict(quantizer="rvq"), "quantizer must be one of"),
    (dict(quantizer="fsq", kmeans_init=True), "kmeans_init apply to quantizer='vq' only"),
    (dict(quantizer="lfq", codebook_init="normal"), "codebook_init apply to quantizer='vq' only"),
    (dict(quantizer="lfq", lfq_bits=20), "lfq_bits must be in \\[1, 16\\]"),
    (dict(quantizer="fsq", fsq_levels=(8, 1)), "levels must be >= 3"),
])
def test_quantizer_choice_refusals(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model("vqvae", length=64, **overrides)


def test_quantizer_choice_through_the_command_line(tmp_path, monkeypatch):
    import json

    from tsvq.cli.main import main
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--dataset", "GunPoint", "--set", "quantizer=lfq", "--set", "lfq_bits=8",
                 "--set", "max_steps=2", "--set", "epochs=2", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 1 <= metrics["test_perplexity"] <= 256 and 0 < metrics["test_fraction_used"] <= 1
    assert main(["prior", str(out), "--set", "max_steps=1", "--set", "epochs=1", "--no-progress"]) == 0
    assert main(["sample", str(out), "--n", "2", "--class", "0"]) == 0
