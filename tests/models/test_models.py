import pytest
import torch
import torch.nn.functional as F

from helpers import compiled_twin

from tsvq.engine.module import stage1_step
from tsvq.models import MODELS, create_model, make_config

VARIANTS = [
    ("vqvae", {}),
    ("vqvae", {"two_branch": True}),
    ("ncvqvae", {"ssl_loss": "barlow_twins", "augmentation": "slice"}),
    ("ncvqvae", {"ssl_loss": "vibcreg", "augmentation": "gauss"}),
    ("ncvqvae", {"ssl_loss": "vicreg", "augmentation": "warp"}),
    ("ncvqvae", {"augmentation": "bt", "two_augmented_views": True, "pooling": "gmp"}),
    ("ncvqvae", {"two_branch": True}),
    ("vqvae", {"rotation_trick": True}),
    ("vqvae", {"threshold_ema_dead_code": 2.0}),
]


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=lambda v: str(v))
@pytest.mark.parametrize("L", [64, 151])
def test_every_model_forward_backward_shapes(name, overrides, L):
    torch.manual_seed(0)
    kw = dict(overrides)
    if name == "ncvqvae":
        kw["projector_widths"] = (64, 64)
    model = create_model(name, length=L, in_channels=2, d=16, n_resnet_blocks=1, **kw)
    x = torch.randn(6, 2, L)
    out = stage1_step(model, (x,), None, 0, 1)
    assert out["x_hat"].shape == x.shape
    for k in ("loss", "recon_time", "recon_timefreq", "vq"):
        assert out[k].dim() == 0 and torch.isfinite(out[k]), k
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads if g is not None)
    model.eval()
    z, z_q, idx = model.encode(x)
    n_branches = 2 if overrides.get("two_branch") else 1
    assert len(z) == len(z_q) == len(idx) == len(out["z"]) == n_branches  # always one entry per branch
    for branch, q, i in zip(model.branches, z_q, idx):
        torch.testing.assert_close(q, branch.vq.codebook[i].permute(0, 3, 1, 2))  # z_q is the chosen codewords (eval mode)
    x_hat = model.decode(z_q)
    assert x_hat.shape == (6, 2, L) and torch.isfinite(x_hat).all()
    torch.testing.assert_close(model.decode_indices(idx), x_hat)
    assert model.pooled(x).shape == (6, 16 * (2 if overrides.get("two_branch") else 1))


def test_registry_refuses_duplicates_and_feeds_the_cli():
    from tsvq.cli.main import build_parser
    from tsvq.models import TOKENIZERS, TRAINABLE, VAEConfig, register_model

    with pytest.raises(ValueError, match="'vqvae' is already registered"):
        register_model("vqvae", VAEConfig)
    with pytest.raises(ValueError, match="must be a dataclass"):
        register_model("new_model", dict)
    assert "new_model" not in MODELS
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "model")
    assert list(train.choices) == list(TRAINABLE) and set(TOKENIZERS) <= set(TRAINABLE) <= set(MODELS)


def test_registry_errors():
    assert set(MODELS) >= {"vqvae", "ncvqvae"}
    with pytest.raises(ValueError, match="unknown model"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown vqvae config field"):
        make_config("vqvae", not_a_field=1)
    with pytest.raises(ValueError, match="ssl_loss"):
        create_model("ncvqvae", ssl_loss="simsiam")
    with pytest.raises(ValueError, match="augmentation"):
        create_model("ncvqvae", augmentation="mixup")
    with pytest.raises(ValueError, match="ssl_weight must be a finite number >= 0"):
        create_model("ncvqvae", ssl_weight=-1.0)
    for widths in ((0,), (-5, 8), (8, 2.5)):
        with pytest.raises(ValueError, match="projector widths must be ints >= 1"):
            create_model("ncvqvae", projector_widths=widths)
    m = create_model("vqvae", length=64)
    with pytest.raises(ValueError, match=r"Tensor\[B, 1, 64\]"):
        m(torch.randn(2, 1, 65))


def test_ncvqvae_ssl_term_is_weighted_and_dropped_in_eval():
    m = create_model("ncvqvae", length=64, d=16, n_resnet_blocks=1, projector_widths=(32, 32), ssl_loss="vibcreg")
    assert m.ssl_weight == 0.01
    x = torch.randn(8, 1, 64)
    out = stage1_step(m, (x,), torch.Generator().manual_seed(0), 0, 1)
    parts = out["recon_time"] + out["recon_timefreq"] + out["vq"] + 0.01 * out["ssl"]
    torch.testing.assert_close(out["loss"], parts)
    m.eval()
    assert m(x)["ssl"] == 0


def test_rotation_trick_reaches_the_encoder():
    # The config field reaches every branch's quantiser, and the encoder's gradient changes with it
    # (same weights, same batch) while the loss does not.
    grads, losses = [], []
    for rotation_trick in (False, True):
        torch.manual_seed(0)
        m = create_model("vqvae", length=64, d=16, n_resnet_blocks=1, two_branch=True, rotation_trick=rotation_trick)
        assert all(b.vq.rotation_trick == rotation_trick for b in m.branches)
        assert all(b.vq.threshold_ema_dead_code == 0 for b in m.branches)
        out = m(torch.randn(6, 1, 64, generator=torch.Generator().manual_seed(1)))
        out["loss"].backward()
        losses.append(out["loss"].detach())
        grads.append(m.branches[0].encoder.net[0].weight.grad.clone())
    torch.testing.assert_close(losses[0], losses[1])
    assert not torch.allclose(grads[0], grads[1])
    m = create_model("vqvae", length=64, d=16, n_resnet_blocks=1, two_branch=True, threshold_ema_dead_code=2.0)
    assert all(b.vq.threshold_ema_dead_code == 2.0 for b in m.branches)


@pytest.mark.parametrize("name,overrides", [("vqvae", {}), ("vqvae", {"two_branch": True}),
                                            ("ncvqvae", {"projector_widths": (32, 32)})], ids=str)
def test_tokenizers_compile_without_graph_breaks(name, overrides):
    # The whole training forward (STFT, encoder, quantiser with its EMA update, decoder, ISTFT; for
    # ncvqvae the augmented view's encoder pass, projector and Barlow Twins loss) traces as one
    # graph, and the compiled step equals the eager one: loss, gradients and buffers (EMA codebook,
    # BatchNorm).
    from tsvq.data import make_views
    compiled, model, eager = compiled_twin(lambda: create_model(name, length=48, d=16, n_resnet_blocks=1, **overrides),
                                           fullgraph=True, backend="aot_eager")
    x = torch.randn(6, 1, 48)
    kw = {"views": make_views(x, eager.view_spec, torch.Generator().manual_seed(1))} if name == "ncvqvae" else {}
    outs = []
    for m in (compiled, eager):
        loss = m(x, **kw)["loss"]
        loss.backward()
        outs.append((loss.detach(), [p.grad for p in m.parameters()]))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(dict(model.named_buffers()), dict(eager.named_buffers()))


def test_ncvqvae_ssl_term_is_the_loss_of_the_given_views():
    # The model draws nothing itself: given views, the SSL term is the loss of their projections,
    # whatever the generator; the original view reuses the reconstruction pass's latents.
    from tsvq.data import make_views
    torch.manual_seed(0)
    m = create_model("ncvqvae", length=64, d=16, n_resnet_blocks=1, projector_widths=(32, 32), augmentation="gauss")
    assert m.view_spec.with_original and m.view_spec.augmentation == "gauss"
    x = torch.randn(8, 1, 64)
    views = make_views(x, m.view_spec, torch.Generator().manual_seed(3))
    m.eval()  # BatchNorm statistics fixed, so separate passes are comparable
    with torch.no_grad():
        expected = m.ssl(m.projector(m._pool(m._latent(x))), m.projector(m._pool(m._latent(views[1]))))
    m.train()
    for m_ in m.modules():
        if isinstance(m_, torch.nn.modules.batchnorm._BatchNorm):
            m_.eval()
    outs = [m(x, views=views, generator=torch.Generator().manual_seed(s))["ssl"].detach() for s in (0, 1)]
    torch.testing.assert_close(outs[0], expected)
    torch.testing.assert_close(outs[1], expected)
    swapped = m(x, views=(views[1], x))["ssl"].detach()
    torch.testing.assert_close(swapped, m.ssl(m.projector(m._pool(m._latent(views[1]))), m.projector(m._pool(m._latent(x)))).detach())
    with pytest.raises(ValueError, match="views: ncvqvae trains on two SSL views"):
        m(x)
    with pytest.raises(ValueError, match="views must be two tensors"):
        m(x, views=(x, x[:, :, :32]))


def test_ncvqvae_reference_choices_original_z_q_and_augmented_reconstruction():
    # original_latent="z_q": the SSL head sees the original view's codewords (straight-through);
    # aug_recon_weight: the augmented view decoded from its continuous latent, added to the loss.
    from tsvq.data import make_views
    torch.manual_seed(0)
    kw = dict(length=64, d=16, n_resnet_blocks=1, projector_widths=(32, 32), augmentation="gauss")
    m = create_model("ncvqvae", original_latent="z_q", aug_recon_weight=0.1, **kw)
    plain = create_model("ncvqvae", **kw)
    plain.load_state_dict(m.state_dict())
    for model in (m, plain):
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.eval()
        model.branches[0].vq.decay = 1.0  # no EMA step: both models keep the same codebook
    x = torch.randn(8, 1, 64)
    views = make_views(x, m.view_spec, torch.Generator().manual_seed(3))
    out, ref = m(x, views=views), plain(x, views=views)
    with torch.no_grad():
        z_aug = m._latent(views[1])
        expected = m.ssl(m.projector(m._pool(out["z_q"])), m.projector(m._pool(z_aug)))
        u = m.to_time_frequency(views[1])
        u_hat = m.branches[0].decoder(z_aug[0])
        aug = F.mse_loss(m.to_time(u_hat), views[1]) + F.mse_loss(u_hat, u)
    torch.testing.assert_close(out["ssl"].detach(), expected)
    assert not torch.isclose(out["ssl"], ref["ssl"])  # z and z_q give different SSL terms
    torch.testing.assert_close(out["aug_recon"].detach(), aug)
    torch.testing.assert_close(out["loss"], out["recon_time"] + out["recon_timefreq"] + out["vq"]
                               + out["ssl"] + 0.1 * out["aug_recon"])
    codebook = m.branches[0].vq.codebook
    rows = out["z_q"][0].detach().permute(0, 2, 3, 1).reshape(-1, 16)
    assert (rows[:, None] - codebook[None]).abs().amax(-1).min(1).values.max() < 1e-5  # z_q values are codewords
    out["loss"].backward()
    assert m.branches[0].encoder.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="original_latent must be"):
        create_model("ncvqvae", original_latent="zq")
    with pytest.raises(ValueError, match="needs an original view"):
        create_model("ncvqvae", original_latent="z_q", two_augmented_views=True)
    with pytest.raises(ValueError, match="aug_recon_weight must be"):
        create_model("ncvqvae", aug_recon_weight=-0.1)


def test_codebook_init_normal_reproduces_the_early_ema_start():
    # "normal": randn codewords and EMA cluster sizes at 0 (the vector-quantize-pytorch copied by the
    # TimeVQVAE / NC-VQVAE code): after one EMA step the codes no vector chose are ~1/eps times
    # larger and out of reach; with the default start they stay where they were.
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64)
    norms = {}
    for init in ("kaiming_uniform", "normal"):
        torch.manual_seed(0)
        m = create_model("vqvae", length=64, d=16, n_resnet_blocks=1, codebook_init=init, codebook_size=256)
        vq = m.branches[0].vq
        before = vq.codebook.clone()
        if init == "normal":
            assert float(vq.cluster_size.sum()) == 0 and abs(float(before.std()) - 1) < 0.2
        m(x)
        unused = vq.batch_counts == 0  # 2 x 5 x 8 = 80 vectors cannot use all 256 codes
        assert unused.any()
        norms[init] = (vq.codebook[unused].norm(dim=1) / before[unused].norm(dim=1)).min()
    assert norms["normal"] > 1e3 and norms["kaiming_uniform"] < 2
    with pytest.raises(ValueError, match="codebook_init must be"):
        create_model("vqvae", codebook_init="uniform")


def test_decoder_timevqvae_is_the_reference_decoder():
    # decoder="timevqvae": TimeVQVAE's decoder as the NC-VQVAE code copies it (no BN in its residual
    # blocks, one more 2C -> 2C upsampling, align_corners=True). Its parameter counts (encoder +
    # decoder) are those of that code's VQVAEEncoder + VQVAEDecoder for these lengths, and with its
    # weights loaded both give the same output to the last bit (checked once against the reference
    # code; docs/ncvqvae-reference.md).
    for length, n_params in ((150, 530932), (24, 333556), (96, 432244)):
        m = create_model("vqvae", length=length, decoder="timevqvae")
        b = m.branches[0]
        assert sum(p.numel() for p in (*b.encoder.parameters(), *b.decoder.parameters())) == n_params
        mirror = create_model("vqvae", length=length).branches[0]
        extra = 4 * 2 * 64 - (2 * 2 * 3 * 4 + 2)  # the mirror: BN in its 4 residual blocks, no last 2C -> 2C ConvT
        assert sum(p.numel() for p in (*mirror.encoder.parameters(), *mirror.decoder.parameters())) == n_params + extra
    b = create_model("vqvae", length=150, decoder="timevqvae").branches[0]
    convs = [mod for mod in b.decoder.net if isinstance(mod, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs[-2:]] == [2, 2]  # the extra upsampling after the last
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for blk in b.decoder.net if hasattr(blk, "body")
                   for mod in blk.body)
    z = torch.randn(2, 64, 5, 9)
    b.decoder.eval()
    pre = b.decoder.net(z)  # 9 frames, doubled by each of the 4 transposed convolutions, then 76
    assert pre.shape[-1] == 144
    torch.testing.assert_close(b.decoder(z), F.interpolate(pre, size=(5, 76), mode="bilinear", align_corners=True))
    with pytest.raises(ValueError, match="decoder must be 'mirror' or 'timevqvae'"):
        create_model("vqvae", decoder="timevqae")
