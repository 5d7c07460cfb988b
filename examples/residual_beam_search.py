"""Residual VQ with beam search: the same trained codebooks, greedy against beam-searched codes, on
the patches of a real UCR dataset (CPU, seconds).

    TSVQ_DATA_DIR=~/data/UCRArchive_2018 python examples/residual_beam_search.py --dataset GunPoint

Each series (scaled with one mean and std over the train matrix) is cut into patches of 8 time
steps; a 4-layer tsvq.nn.ResidualVectorQuantizer (16 codes a layer, EMA codebooks, k-means start)
learns its codebooks on the train patches; then the test patches are quantised greedily
(beam_size=1) and with wider beams (ResidualVQ's beam search), and the script prints the test
MSE of the quantised patches (scaled units) and the time for each beam width.
"""
from __future__ import annotations

import argparse
import time

import torch

from tsvq.data import GlobalScaler, load_ucr
from tsvq.nn import ResidualVectorQuantizer


def patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """Tensor[N, 1, L] -> Tensor[N, L // size, size]: non-overlapping patches (the tail dropped)."""
    n = x.shape[-1] // size
    return x[..., : n * size].reshape(x.shape[0], n, size)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="GunPoint")
    p.add_argument("--data-dir", default=None, help="UCR archive folder (default: $TSVQ_DATA_DIR, then aeon)")
    p.add_argument("--steps", type=int, default=200, help="EMA training steps over the train patches")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 2, 4, 8])
    args = p.parse_args(argv)

    torch.manual_seed(0)
    ds = load_ucr(args.dataset, args.data_dir)
    scaler = GlobalScaler().fit(ds.x_train)
    train, test = patches(scaler.transform(ds.x_train), 8), patches(scaler.transform(ds.x_test), 8)
    rvq = ResidualVectorQuantizer(8, num_quantizers=4, codebook_size=16, decay=0.9, kmeans_init=True)
    with torch.no_grad():
        for _ in range(args.steps):  # EMA codebooks learn without an optimiser
            rvq(train)
    rvq.eval()
    result = {}
    print(f"| {args.dataset} | beam | test MSE | ms |\n|---|---:|---:|---:|")
    for beam in args.beams:
        t = time.perf_counter()
        with torch.no_grad():
            quantized, _, _ = rvq(test, beam_size=beam)
        ms = 1e3 * (time.perf_counter() - t)
        result[beam] = (test - quantized).square().mean().item()
        print(f"| {args.dataset} | {beam} | {result[beam]:.5f} | {ms:.1f} |")
    return result


if __name__ == "__main__":
    main()
