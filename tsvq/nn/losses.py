"""Self-supervised losses and the projector head (Barlow Twins, VICReg, VIbCReg, NT-Xent).

Shapes: ``z1, z2: Tensor[N, D]`` are two views' embeddings (projector outputs), row n of each
from the same sample. Every loss returns a scalar.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..ops import barlow_twins_loss


def _gather(z: torch.Tensor) -> torch.Tensor:
    """All-gather rows across ranks with gradient (identity without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


def _at_least_float32(z: torch.Tensor) -> torch.Tensor:
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def _check_views(z1: torch.Tensor, z2: torch.Tensor, min_n: int = 2) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"{name} must be a float tensor")
        if z.dim() != 2:
            raise ValueError(f"{name} must be Tensor[N, D], got shape {list(z.shape)}")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {list(z1.shape)} and {list(z2.shape)}")
    if z1.shape[0] < min_n:
        raise ValueError(f"z1 and z2 need N >= {min_n} rows, got N = {z1.shape[0]}")


def _off_diagonal_sq_sum(x: torch.Tensor) -> torch.Tensor:
    """``sum_{i != j} (X^T X)_ij^2`` for ``x: Tensor[N, D]``, without the D x D matrix when 2N <= D.

    There it is the exact identity ``||X X^T||_F^2 - sum_j ||x_j||^4`` (``||X^T X||_F = ||X X^T||_F``;
    the second sum takes out the diagonal, the squared column norms): an N x N Gram matrix, O(N^2 D)
    work and O(N^2) memory in place of O(N D^2) and O(D^2) (the same identity as the Gram path of
    :func:`tsvq.ops.barlow_twins_loss`). With 2N <= D the rank bound ``||X^T X||_F^2 >= (sum_j
    ||x_j||^2)^2 / N`` keeps the off-diagonal part at least the diagonal part when the columns have
    equal norms, so the subtraction loses at most one bit; columns of very unequal norms need a
    float64 ``x`` (see :meth:`VICRegLoss.covariance_term`). Otherwise the D x D product, its
    diagonal zeroed.
    """
    n, d = x.shape
    if 2 * n <= d:
        return (x @ x.T).pow(2).sum() - x.pow(2).sum(0).pow(2).sum()
    return (x.T @ x).fill_diagonal_(0).pow(2).sum()


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss (Zbontar et al. 2021, eq. 1) on the fused ``tsvq.ops.barlow_twins_loss``.

    ``L = sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2`` with C the cross-correlation of the
    batch-standardised views; divided by D with ``scale_by_dim`` (NC-VQVAE: lambd 0.005, / 4096).
    Under ``torch.distributed`` the views of all ranks are all-gathered (with gradient) so the
    standardisation and C use the global batch, as in the original implementation.

    Args:
        lambd: off-diagonal weight, default 0.005.
        eps: added to the variance, default 1e-5.
        unbiased: unbiased (N - 1) variance in the standardisation (default biased).
        scale_by_dim: divide by D.
    """

    def __init__(self, lambd: float = 0.005, eps: float = 1e-5, unbiased: bool = False, scale_by_dim: bool = False):
        super().__init__()
        self.lambd, self.eps, self.unbiased, self.scale_by_dim = lambd, eps, unbiased, scale_by_dim

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins_loss(_gather(z1), _gather(z2), self.lambd, self.eps, self.unbiased, self.scale_by_dim)


def _variance_hinge(z: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


class VICRegLoss(nn.Module):
    """VICReg (Bardes, Ponce & LeCun 2022, eqs. 1-6).

    ``L = sim_weight * MSE(z1, z2) + var_weight * [v(z1) + v(z2)] + cov_weight * [c(z1) + c(z2)]``
    with the variance hinge ``v(Z) = mean_j max(0, gamma - sqrt(Var(z_j) + eps))`` and the
    covariance term ``c(Z) = (1/D) sum_{i != j} Cov(Z)_ij^2`` (unbiased covariance). This is the
    paper's equation; the official code (facebookresearch/vicreg) halves the variance term.

    Args:
        sim_weight, var_weight, cov_weight: lambda, mu, nu; defaults 25, 25, 1.
        gamma: target standard deviation, default 1.
        eps: default 1e-4.
    """

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0,
                 gamma: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.sim_weight, self.var_weight, self.cov_weight = sim_weight, var_weight, cov_weight
        self.gamma, self.eps = gamma, eps

    @staticmethod
    def covariance_term(z: torch.Tensor) -> torch.Tensor:
        """``c(Z) = (1/D) sum_{i != j} Cov(Z)_ij^2`` for ``z: Tensor[N, D]``, in z's dtype.

        For 2N <= D (the NC-VQVAE head: N = 128, D = 4096) computed from the N x N Gram matrix
        (:func:`_off_diagonal_sq_sum`; the whole loss, forward + backward, about 20x faster there
        than with the D x D covariance on a 2-core CPU: benchmarks/bench_ssl_losses.py) in float64:
        the diagonal is taken out by a subtraction, and one feature of much larger variance than
        the rest would otherwise cost float32 most of its digits (1e-3 relative error with one
        feature at 1000x the others' std; float64 1e-11).
        """
        n, d = z.shape
        zc = z - z.mean(0)
        if 2 * n <= d:
            zc = zc.double()
        return (_off_diagonal_sq_sum(zc) / ((n - 1) ** 2 * d)).to(z.dtype)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``z1, z2: Tensor[N, D]`` (the two views' projections) -> scalar loss, float32 (float64
        for float64 views).

        float16/bfloat16 views (mixed precision) are computed in float32 with autocast off: the
        variances and the covariance's Gram matrix lose too many digits in half precision.

        Raises:
            ValueError: shapes differ or are not ``[N, D]``, or N < 2.
            TypeError: non-float input.
        """
        _check_views(z1, z2)
        with torch.autocast(z1.device.type, enabled=False):
            z1, z2 = _at_least_float32(_gather(z1)), _at_least_float32(_gather(z2))
            inv = F.mse_loss(z1, z2)
            var = _variance_hinge(z1, self.gamma, self.eps) + _variance_hinge(z2, self.gamma, self.eps)
            cov = self.covariance_term(z1) + self.covariance_term(z2)
            return self.sim_weight * inv + self.var_weight * var + self.cov_weight * cov


class VIbCRegLoss(VICRegLoss):
    """VIbCReg (Lee & Aune 2021, "Computer Vision Self-supervised Learning Methods on Time
    Series"): VICReg with a normalised covariance (correlation) term and, in the projector,
    IterNorm whitening (:class:`IterNorm`).

    ``c(Z) = mean_{i,j} (1[i != j] * Zn_i . Zn_j)^2`` where ``Zn`` is Z centred and L2-normalised
    along the batch, so the off-diagonal entries are correlations in [-1, 1]; the mean is over
    all D^2 entries, diagonal zeroed, as in the authors' code. Defaults (25, 25, 200).
    """

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 200.0,
                 gamma: float = 1.0, eps: float = 1e-4):
        super().__init__(sim_weight, var_weight, cov_weight, gamma, eps)

    @staticmethod
    def covariance_term(z: torch.Tensor) -> torch.Tensor:
        """``mean_{i,j} (1[i != j] Zn_i . Zn_j)^2`` for ``z: Tensor[N, D]``; from the N x N Gram matrix
        when 2N <= D (:func:`_off_diagonal_sq_sum`; the columns of Zn have unit norm, so the
        subtraction of the diagonal is safe in z's dtype)."""
        zn = F.normalize(z - z.mean(0), p=2, dim=0)
        return _off_diagonal_sq_sum(zn) / z.shape[1] ** 2


class NTXentLoss(nn.Module):
    """NT-Xent, the normalised-temperature cross-entropy of SimCLR (Chen et al. 2020, eq. 1).

    The 2N views are L2-normalised; for each view the positive is the other view of the same
    sample and the 2N - 2 views of the other samples are negatives:
    ``l(i, j) = -log exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)``, averaged over all 2N
    ordered positive pairs. Under ``torch.distributed`` negatives come from every rank.

    Args:
        temperature: tau > 0, default 0.5.
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if not 0.0 < temperature < math.inf:
            raise ValueError(f"temperature must be a finite float > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``z1, z2: Tensor[N, D]`` (the two views' projections) -> scalar loss.

        Raises:
            ValueError: shapes differ or are not ``[N, D]``, or fewer than 2 samples over all
                ranks (one sample has no negatives, and its loss would be 0 whatever z is).
            TypeError: non-float input.
        """
        _check_views(z1, z2, min_n=1)
        z = F.normalize(torch.cat([_gather(z1), _gather(z2)]), dim=1)
        n = z.shape[0] // 2
        if n < 2:
            raise ValueError(f"z1 and z2: NT-Xent needs N >= 2 samples over all ranks (the other samples are the "
                             f"negatives), got N = {n}")
        logits = (z @ z.T) / self.temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, targets)


class IterNorm(nn.Module):
    """Iterative (group) whitening, IterNorm (Huang et al. 2019, Algorithm 1), over the batch.

    Features are split into groups of ``num_features // num_groups``; each group is centred and
    whitened with ``Sigma^{-1/2}`` approximated by ``T`` Newton-Schulz iterations on the
    trace-normalised covariance. Running mean and whitening matrix are used in ``eval()``.

    Args:
        num_features: D.
        num_groups: number of groups (D must be divisible by it), default 64.
        T: Newton iterations, default 5.
        eps: ridge added to the covariance, default 1e-5.
        momentum: running-statistics momentum, default 0.1.

    Shapes: ``Tensor[N, D] -> Tensor[N, D]``.
    """

    def __init__(self, num_features: int, num_groups: int = 64, T: int = 5, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        num_groups = min(num_groups, num_features)
        if num_features % num_groups:
            raise ValueError(f"num_features ({num_features}) must be divisible by num_groups ({num_groups})")
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.num_features, self.num_groups, self.T, self.eps, self.momentum = num_features, num_groups, T, eps, momentum
        g = num_features // num_groups
        self.register_buffer("running_mean", torch.zeros(num_groups, g, 1))
        self.register_buffer("running_wm", torch.eye(g).expand(num_groups, g, g).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x must be Tensor[N, {self.num_features}], got shape {list(x.shape)}")
        n = x.shape[0]
        g = self.num_features // self.num_groups
        xg = x.T.reshape(self.num_groups, g, n)  # [G, g, N]
        if self.training:
            if n < 2:
                raise ValueError("IterNorm needs N >= 2 rows in training mode")
            mean = xg.mean(-1, keepdim=True)
            xc = xg - mean
            eye = torch.eye(g, dtype=x.dtype, device=x.device).expand(self.num_groups, g, g)
            sigma = torch.baddbmm(eye * self.eps, xc, xc.transpose(1, 2), alpha=1.0 / n)
            trace = sigma.diagonal(dim1=1, dim2=2).sum(-1).reshape(-1, 1, 1)
            sigma_n = sigma / trace
            p = eye
            for _ in range(self.T):
                p = torch.baddbmm(p, torch.matrix_power(p, 3), sigma_n, beta=1.5, alpha=-0.5)
            wm = p / trace.sqrt()
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_wm.lerp_(wm.detach(), self.momentum)
        else:
            xc, wm = xg - self.running_mean, self.running_wm
        return torch.bmm(wm, xc).reshape(self.num_features, n).T

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_groups={self.num_groups}, T={self.T}"


class Projector(nn.Module):
    """MLP projector of the SSL head (Barlow Twins / NC-VQVAE design).

    ``Linear -> BatchNorm1d -> ReLU`` for every hidden width, then a final ``Linear``; the
    NC-VQVAE default is ``in_dim -> 4096 -> 4096 -> 4096``. ``final_iternorm`` appends
    :class:`IterNorm` (VIbCReg). The projector is used only for the SSL loss; downstream
    evaluations never use its output.

    Args:
        in_dim: input features.
        widths: output width of each Linear layer, default (4096, 4096, 4096).
        final_iternorm: append IterNorm after the last Linear.

    Shapes: ``Tensor[N, in_dim] -> Tensor[N, widths[-1]]``.
    """

    def __init__(self, in_dim: int, widths: tuple[int, ...] = (4096, 4096, 4096), final_iternorm: bool = False):
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one layer")
        for w in (in_dim, *widths):
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"projector widths must be ints >= 1, got in_dim={in_dim!r}, widths={tuple(widths)!r}")
        layers: list[nn.Module] = []
        dims = (in_dim, *widths)
        for i in range(len(widths) - 1):
            layers += [nn.Linear(dims[i], dims[i + 1], bias=False), nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
        if final_iternorm:
            layers.append(IterNorm(dims[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def pair(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views' projections, ``(self(x1), self(x2))``, with one pass through each Linear.

        The two ``Tensor[N, in_dim]`` batches are stacked for the matrix products (each weight
        is read once per step instead of once per view, and its gradient is one product), while
        BatchNorm and IterNorm still normalise each view with its own batch statistics, as two
        separate calls would; running statistics are updated once per view, in view order.

        Raises:
            ValueError: ``x1`` and ``x2`` differ in shape.
        """
        if x1.shape != x2.shape:
            raise ValueError(f"x1 and x2 must have the same shape, got {list(x1.shape)} and {list(x2.shape)}")
        n = x1.shape[0]
        h = torch.cat([x1, x2])
        for layer in self.net:
            if isinstance(layer, (nn.BatchNorm1d, IterNorm)):
                h = torch.cat([layer(h[:n]), layer(h[n:])])
            else:
                h = layer(h)
        return h[:n], h[n:]
