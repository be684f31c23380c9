#!/usr/bin/python3
"""PyTorch reference for bench_vit: the same ViT-S/16 224 (timm layout, random weights),
batch 16, forward and forward + input gradient, on the CPU with the same thread count.
Run with Debian's python3-torch 1.13:  /usr/bin/python3 bench/torch_vit.py [--threads N]
Prints lines `torch <attn> <pass> <images/s>` that bench/run.sh compares with questbench."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_vit_fixtures import make_params, vit_forward  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--attn", default="sdpa,quest")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    D, H, L, P, S, F, K = 384, 6, 12, 16, 224, 1536, 1000
    for attn in a.attn.split(","):
        g = torch.Generator().manual_seed(0)
        p = make_params(g, attn, D, H, L, P, S, F, K, "token", True, True)
        x = torch.rand(a.batch, 3, S, S, generator=g)
        for backward in (False, True):
            def step():
                if backward:
                    xi = x.clone().requires_grad_(True)
                    out = vit_forward(p, xi, attn, D, H, L, P, "token", True)
                    out[:, 0].sum().backward()
                else:
                    with torch.no_grad():
                        vit_forward(p, x, attn, D, H, L, P, "token", True)
            step()  # warm-up
            best = float("inf")  # the fastest iteration, as bench_vit times itself and the sgemm rate
            for _ in range(a.iters):
                t = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - t)
            rate = a.batch / best
            print(f"torch {attn} {'forward+input-grad' if backward else 'forward'} {rate:.2f}", flush=True)


if __name__ == "__main__":
    main()
