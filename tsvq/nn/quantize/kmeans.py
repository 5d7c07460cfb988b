"""k-means (Lloyd) on the tsvq kernels, used to initialise codebooks."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ...ops import code_stats, nearest_code


def kmeans(
    x: torch.Tensor,
    num_clusters: int,
    num_iters: int = 10,
    use_cosine_sim: bool = False,
    sync: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with :func:`tsvq.ops.nearest_code` and :func:`tsvq.ops.code_stats`.

    Centroids start at distinct random rows of ``x`` (with replacement when N < K). A cluster
    that loses all its points keeps its previous centroid. With ``use_cosine_sim`` the rows and
    centroids are L2-normalised (spherical k-means). With ``sync`` (``torch.distributed``
    initialised) the initial centroids come from rank 0 and the per-cluster counts and sums
    are all-reduced every iteration, so every rank ends with the same centroids.

    Args:
        x: Tensor[N, D], float, N >= 1.
        num_clusters: K >= 1.
        num_iters: Lloyd iterations, >= 0.
        use_cosine_sim: spherical k-means.
        sync: reduce across ranks.
        generator: optional RNG for the initial centroids.

    Returns:
        (centroids Tensor[K, D] in x's dtype, counts Tensor[K] float: points per cluster at
        the last assignment; all ranks' points when ``sync``).

    Raises:
        ValueError: N == 0, K < 1 or num_iters < 0.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty Tensor[N, D], got shape {list(x.shape)}")
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    x = x.detach()
    if use_cosine_sim:
        x = F.normalize(x, dim=-1)
    n = x.shape[0]
    home = "cpu" if generator is None else generator.device  # the picks are drawn where the generator is
    if n >= num_clusters:
        pick = torch.randperm(n, generator=generator, device=home)[:num_clusters].to(x.device)
    else:
        pick = torch.randint(0, n, (num_clusters,), generator=generator, device=home).to(x.device)
    means = x[pick].clone()
    if sync:
        dist.broadcast(means, src=0)
    counts = torch.zeros(num_clusters, dtype=torch.float32, device=x.device)
    for _ in range(num_iters):
        indices, _ = nearest_code(x, means)
        counts, sums = code_stats(x, indices, num_clusters)
        if sync:
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        new = (sums / counts.clamp_min(1).unsqueeze(1)).to(means.dtype)
        if use_cosine_sim:
            new = F.normalize(new, dim=-1)
        means = torch.where((counts == 0).unsqueeze(1), means, new)
    return means, counts
