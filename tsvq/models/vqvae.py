"""TimeVQVAE stage-1 tokenizer (Lee, Malacarne & Aune 2023), the NC-VQVAE baseline.

x [B, C, L] --STFT--> u [B, 2C, F, T] --encoder--> z [B, d, F, T'] --VectorQuantizer--> z_q
--decoder--> u_hat [B, 2C, F, T] --ISTFT--> x_hat [B, C, L].
Loss (SPEC section 4): MSE(x, x_hat) + MSE(u, u_hat) + VQ commitment loss. The paper's two-branch
variant splits u into the LF part (the DC row) and the HF part (the other rows), each with its own
encoder / codebook / decoder, and uses L1 on the HF time reconstruction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ISTFT, STFT, VectorQuantizer
from .quantizers import QUANTIZERS, FSQTokens, LFQTokens, SimVQTokens
from .registry import register_model


@dataclass
class VQVAEConfig:
    """Tokenizer settings; defaults are the NC-VQVAE baseline (TimeVQVAE v0, single branch).

    Attributes:
        in_channels: C, channels of the series.
        length: L, samples per series (fixes the STFT frame count and the decoder output).
        n_fft, hop_length: STFT (Hann window, centred, reflect padding); F = n_fft // 2 + 1.
        d: hidden width of encoder/decoder and the codeword dimension D.
        downsampled_width: target number of latent frames (TimeVQVAE's "downsampled width").
        n_resnet_blocks: residual blocks after the strided blocks.
        codebook_size: K. decay: EMA decay of the codebook. commitment_weight: beta.
        kmeans_init: k-means codebook initialisation on the first batch.
        codebook_init: "kaiming_uniform" (vector-quantize-pytorch today: EMA cluster sizes start at 1)
            or "normal" (``torch.randn`` codewords and EMA cluster sizes starting at 0, the earlier
            vector-quantize-pytorch that the TimeVQVAE and NC-VQVAE code bases copy: a code that
            no vector picks in the first batch is divided by ~eps there, and never picked again).
        rotation_trick: pass the decoder's gradient to the encoder with the rotation trick (Fifty
            et al. 2024) instead of the straight-through estimator of TimeVQVAE (default False).
        threshold_ema_dead_code: restart codes whose EMA cluster size (vectors per batch) falls
            below this with random encoder vectors of the batch (default 0 = never).
        two_branch: the TimeVQVAE paper's LF/HF split (widths 8 and 32 as in the paper).
        decoder: "mirror" (default: the mirror of the encoder, residual blocks with BatchNorm) or
            "timevqvae" (the TimeVQVAE / NC-VQVAE code's decoder: no BatchNorm in its residual blocks
            and one more upsampling transposed convolution; see :class:`Decoder`; the ``paper``
            preset's).
        quantizer: "vq" (default: the EMA vector quantiser above), "fsq" (finite scalar
            quantisation with ``fsq_levels``, K = prod(levels), no codebook loss), "lfq" (lookup-free
            quantisation, K = 2^``lfq_bits``, entropy penalty weight ``lfq_entropy_weight`` and
            commitment weight ``commitment_weight``) or "simvq" (a learned linear map of a frozen
            random codebook of ``codebook_size``). ``decay``, ``kmeans_init``, ``codebook_init``,
            ``rotation_trick`` and ``threshold_ema_dead_code`` apply to "vq" only.
    """

    in_channels: int = 1
    length: int = 150
    n_fft: int = 8
    hop_length: int = 2
    d: int = 64
    downsampled_width: int = 8
    n_resnet_blocks: int = 4
    codebook_size: int = 32
    decay: float = 0.9
    commitment_weight: float = 1.0
    kmeans_init: bool = False
    codebook_init: str = "kaiming_uniform"
    rotation_trick: bool = False
    threshold_ema_dead_code: float = 0.0
    two_branch: bool = False
    hf_downsampled_width: int = 32
    quantizer: str = "vq"
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    lfq_bits: int = 10
    lfq_entropy_weight: float = 0.1
    decoder: str = "mirror"


class ResBlock(nn.Module):
    """x + Conv1x1(LeakyReLU(BN(Conv3x3(LeakyReLU(x))))) (TimeVQVAE ResBlock; without the BN when
    ``bn`` is False, as in TimeVQVAE's decoder)."""

    def __init__(self, d: int, bn: bool = True):
        super().__init__()
        self.body = nn.Sequential(nn.LeakyReLU(), nn.Conv2d(d, d, 3, 1, 1), *([nn.BatchNorm2d(d)] if bn else []),
                                  nn.LeakyReLU(), nn.Conv2d(d, d, 1))

    def forward(self, x):
        return x + self.body(x)


def _n_down(n_frames: int, width: int) -> int:
    return max(1, int(math.floor(math.log2(max(n_frames / width, 2)))))


class Encoder(nn.Module):
    """Strided Conv2d (3, 4)/(1, 2) replicate-padded + BN + LeakyReLU blocks halving the time axis
    down to about ``width`` frames, then residual blocks. ``Tensor[B, 2C, F, T] -> [B, d, F, T']``."""

    def __init__(self, in_ch: int, d: int, n_down: int, n_res: int):
        super().__init__()
        layers = []
        for i in range(n_down):
            layers += [nn.Conv2d(in_ch if i == 0 else d, d, (3, 4), (1, 2), (1, 1), padding_mode="replicate"),
                       nn.BatchNorm2d(d), nn.LeakyReLU()]
        for _ in range(n_res):
            layers += [ResBlock(d), nn.BatchNorm2d(d)]
        self.net = nn.Sequential(*layers)

    def forward(self, u):
        return self.net(u)


class Decoder(nn.Module):
    """Transposed-convolution decoder, then bilinear interpolation back to exactly (F, T).
    ``Tensor[B, d, F, T'] -> [B, 2C, F, T]``.

    ``style="mirror"``: the mirror of :class:`Encoder` (residual blocks with BN, ``n_down`` upsamplings).
    ``style="timevqvae"``: TimeVQVAE's decoder (``encoder_decoders/vq_vae_encdec.py``, which the
    NC-VQVAE code copies): residual blocks without BN, one more (3, 4)/(1, 2) transposed convolution
    (2C -> 2C) after the last, so the output has twice the frames before the interpolation, and
    ``align_corners=True``."""

    def __init__(self, out_ch: int, d: int, n_down: int, n_res: int, size: tuple[int, int], style: str = "mirror"):
        super().__init__()
        timevqvae = style == "timevqvae"
        layers = []
        for _ in range(n_res):
            layers += [ResBlock(d, bn=not timevqvae), nn.BatchNorm2d(d)]
        for _ in range(n_down - 1):
            layers += [nn.ConvTranspose2d(d, d, (3, 4), (1, 2), (1, 1)), nn.BatchNorm2d(d), nn.LeakyReLU()]
        layers += [nn.ConvTranspose2d(d, out_ch, (3, 4), (1, 2), (1, 1))]
        if timevqvae:
            layers += [nn.ConvTranspose2d(out_ch, out_ch, (3, 4), (1, 2), (1, 1))]
        self.net = nn.Sequential(*layers)
        self.size = size
        self.align_corners = timevqvae

    def forward(self, z):
        return F.interpolate(self.net(z), size=self.size, mode="bilinear", align_corners=self.align_corners)


class _Branch(nn.Module):
    def __init__(self, cfg: VQVAEConfig, width: int, n_freqs: int, n_frames: int):
        super().__init__()
        n_down = _n_down(n_frames, width)
        self.encoder = Encoder(2 * cfg.in_channels, cfg.d, n_down, cfg.n_resnet_blocks)
        if cfg.quantizer == "fsq":
            self.vq = FSQTokens(cfg.d, tuple(cfg.fsq_levels))
        elif cfg.quantizer == "lfq":
            self.vq = LFQTokens(cfg.d, cfg.lfq_bits, cfg.lfq_entropy_weight, cfg.commitment_weight)
        elif cfg.quantizer == "simvq":
            self.vq = SimVQTokens(cfg.d, cfg.codebook_size, cfg.commitment_weight)
        else:
            self.vq = VectorQuantizer(cfg.d, cfg.codebook_size, decay=cfg.decay, commitment_weight=cfg.commitment_weight,
                                      kmeans_init=cfg.kmeans_init, rotation_trick=cfg.rotation_trick,
                                      threshold_ema_dead_code=cfg.threshold_ema_dead_code,
                                      channel_last=False, accept_image_fmap=True)
        self.decoder = Decoder(2 * cfg.in_channels, cfg.d, n_down, cfg.n_resnet_blocks, (n_freqs, n_frames), cfg.decoder)
        if cfg.codebook_init == "normal" and not cfg.kmeans_init:
            with torch.no_grad():
                self.vq.codebook.normal_()
                self.vq.embed_sum.copy_(self.vq.codebook)
                self.vq.cluster_size.zero_()


@register_model("vqvae", VQVAEConfig, trainable=True, tokenizer=True)
class VQVAE(nn.Module):
    """TimeVQVAE stage-1 tokenizer. Build with ``create_model("vqvae", length=L, ...)``.

    ``forward(x: Tensor[B, C, L])`` returns a dict: ``loss`` (scalar to minimise), its parts
    (``recon_time``, ``recon_timefreq``, ``vq``), ``perplexity``, ``x_hat`` [B, C, L] and ``z``.
    Latents and codes are always lists with one entry per branch (one, or LF and HF).
    """

    name = "vqvae"

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        if cfg.length < cfg.n_fft // 2 + 1:
            raise ValueError(f"length must be > n_fft // 2 = {cfg.n_fft // 2} (reflect padding), got {cfg.length}")
        if cfg.decoder not in ("mirror", "timevqvae"):
            raise ValueError(f"decoder must be 'mirror' or 'timevqvae', got {cfg.decoder!r}")
        if cfg.codebook_init not in ("kaiming_uniform", "normal"):
            raise ValueError(f"codebook_init must be 'kaiming_uniform' or 'normal', got {cfg.codebook_init!r}")
        if cfg.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {cfg.quantizer!r}")
        if cfg.quantizer != "vq":
            vq_only = {"kmeans_init": False, "codebook_init": "kaiming_uniform", "rotation_trick": False,
                       "threshold_ema_dead_code": 0.0}
            changed = [k for k, v in vq_only.items() if getattr(cfg, k) != v]
            if changed:
                raise ValueError(f"{', '.join(changed)} apply to quantizer='vq' only, got quantizer={cfg.quantizer!r}")
        if cfg.quantizer == "lfq" and not 1 <= cfg.lfq_bits <= 16:
            raise ValueError(f"lfq_bits must be in [1, 16] (2^bits prior tokens), got {cfg.lfq_bits}")
        self.cfg = cfg
        self.stft = STFT(cfg.n_fft, cfg.hop_length, window="hann", stacked=True)
        self.istft = ISTFT(cfg.n_fft, cfg.hop_length, window="hann", stacked=True)
        self.n_freqs, self.n_frames = self.stft.n_freqs, self.stft.n_frames(cfg.length)
        if cfg.two_branch:
            self.branches = nn.ModuleList([_Branch(cfg, cfg.downsampled_width, self.n_freqs, self.n_frames),
                                           _Branch(cfg, cfg.hf_downsampled_width, self.n_freqs, self.n_frames)])
        else:
            self.branches = nn.ModuleList([_Branch(cfg, cfg.downsampled_width, self.n_freqs, self.n_frames)])

    @property
    def n_codes(self) -> int:
        """K, codes per branch of the configured quantiser (prod(fsq_levels), 2^lfq_bits or codebook_size)."""
        return self.branches[0].vq.codebook_size

    # ----------------------------------------------------------------- helpers
    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels or x.shape[2] != self.cfg.length:
            raise ValueError(f"x must be Tensor[B, {self.cfg.in_channels}, {self.cfg.length}], got {list(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x: empty batch")

    def _split(self, u: torch.Tensor) -> list[torch.Tensor]:
        if not self.cfg.two_branch:
            return [u]
        lf = torch.zeros_like(u)
        lf[:, :, :1] = u[:, :, :1]
        return [lf, u - lf]

    def to_time_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, L] -> Tensor[B, 2C, F, T]`` (real/imag channels, Hann STFT)."""
        return self.stft(x)

    def to_time(self, u: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, 2C, F, T] -> Tensor[B, C, L]`` (exact length L, odd lengths included)."""
        return self.istft(u, length=self.cfg.length)

    # ----------------------------------------------------------------- API
    def encode(self, x: torch.Tensor):
        """``x: Tensor[B, C, L]`` -> ``(z, z_q, indices)``, each a list with one entry per branch:
        continuous latents ``[B, d, F, T']``, quantised latents (same shapes, straight-through)
        and codes ``int64[B, F, T']``."""
        self._check(x)
        zs, zqs, idx = [], [], []
        for branch, u in zip(self.branches, self._split(self.to_time_frequency(x))):
            z = branch.encoder(u)
            z_q, codes, _ = branch.vq(z)
            zs.append(z)
            zqs.append(z_q)
            idx.append(codes)
        return zs, zqs, idx

    def _branch_list(self, values, name: str) -> list[torch.Tensor]:
        values = list(values)
        if len(values) != len(self.branches):
            raise ValueError(f"{name} must be a list of {len(self.branches)} tensors (one per branch), got {len(values)}")
        return values

    def decode(self, z_q: list[torch.Tensor]) -> torch.Tensor:
        """Quantised latents from :meth:`encode` (a list, one per branch) -> ``x_hat: Tensor[B, C, L]``.

        Raises:
            ValueError: not one latent per branch."""
        zqs = self._branch_list(z_q, "z_q")
        u_hat = sum(b.decoder(z) for b, z in zip(self.branches, zqs))
        return self.to_time(u_hat)

    def decode_indices(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Codes ``int64[B, F, T']``, a list with one grid per branch -> ``x_hat: Tensor[B, C, L]``.

        Raises:
            ValueError: not one grid per branch."""
        idx = self._branch_list(indices, "indices")
        return self.decode([b.vq.get_codes_from_indices(i) for b, i in zip(self.branches, idx)])  # [B, d, F, T']

    def pooled(self, x: torch.Tensor, flatten: bool = False) -> torch.Tensor:
        """Probe features: global-average-pooled z_q ``[B, d * branches]`` (or flattened z_q)."""
        _, z_q, _ = self.encode(x)
        return torch.cat([z.flatten(1) if flatten else z.mean(dim=(2, 3)) for z in z_q], 1)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Probe features (the model-zoo interface): global-average-pooled z_q, as :meth:`pooled`."""
        return self.pooled(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: ``Tensor[B, C, L]``."""
        return self.decode(self.encode(x)[1])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss breakdown of ``x: Tensor[B, C, L]`` (``generator`` is unused: no randomness here)."""
        self._check(x)
        u = self.to_time_frequency(x)
        parts = self._split(u)
        out: dict[str, torch.Tensor] = {}
        vq_loss, recon_time, recon_tf, u_hat_sum, ppl = 0.0, 0.0, 0.0, 0.0, []
        latents, quantised = [], []
        for k, (branch, u_k) in enumerate(zip(self.branches, parts)):
            z = branch.encoder(u_k)
            z_q, _, commit = branch.vq(z)
            quantised.append(z_q)
            u_hat = branch.decoder(z_q)
            u_hat_sum = u_hat_sum + u_hat
            vq_loss = vq_loss + commit
            recon_tf = recon_tf + F.mse_loss(u_hat, u_k)
            if self.cfg.two_branch:  # TimeVQVAE: MSE on the LF, L1 on the HF time reconstruction
                x_k, x_hat_k = self.to_time(u_k), self.to_time(u_hat)
                recon_time = recon_time + (F.mse_loss(x_hat_k, x_k) if k == 0 else F.l1_loss(x_hat_k, x_k))
            ppl.append(branch.vq.perplexity)
            latents.append(z)
        x_hat = self.to_time(u_hat_sum)
        if not self.cfg.two_branch:
            recon_time = F.mse_loss(x_hat, x)
        out["recon_time"], out["recon_timefreq"], out["vq"] = recon_time, recon_tf, vq_loss
        out["loss"] = recon_time + recon_tf + vq_loss
        out["perplexity"] = torch.stack(ppl).mean()
        out["x_hat"] = x_hat
        out["z"] = latents
        out["z_q"] = quantised
        return out
