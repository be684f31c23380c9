#!/usr/bin/python3
"""PyTorch reference for bench_attack: PGD-10 L∞ (ε = 4/255, α = 1/255, random start,
per-sample cross-entropy, the torchattacks update) on the same ViT-S/16 224 (timm layout,
plain torch, random weights), all images in one batch, on the CPU with the same threads.
Run with Debian's python3-torch 1.13:  /usr/bin/python3 bench/torch_attack.py [--threads N]
Prints `torch <attn> pgd10 <images/s>` lines that bench/run_attack.sh compares."""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_vit_fixtures import make_params, vit_forward  # noqa: E402


def pgd(p, x, y, attn, eps, alpha, steps, g):
    D, H, L, P = 384, 6, 12, 16
    adv = torch.clamp(x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps, 0, 1)
    for _ in range(steps):
        a = adv.clone().requires_grad_(True)
        loss = Fn.cross_entropy(vit_forward(p, a, attn, D, H, L, P, "token", True), y, reduction="sum")
        grad, = torch.autograd.grad(loss, [a])
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.clamp(x + torch.clamp(adv - x, -eps, eps), 0, 1)
    return adv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--attn", default="sdpa")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    D, H, L, P, S, F, K = 384, 6, 12, 16, 224, 1536, 1000
    for attn in a.attn.split(","):
        g = torch.Generator().manual_seed(0)
        p = make_params(g, attn, D, H, L, P, S, F, K, "token", True, True)
        x = torch.randint(0, 256, (a.images, 3, S, S), generator=g).float() / 255
        y = torch.arange(a.images) % K
        with torch.no_grad():
            vit_forward(p, x, attn, D, H, L, P, "token", True)  # warm-up
        t = time.perf_counter()
        pgd(p, x, y, attn, 4 / 255, 1 / 255, 10, g)
        print(f"torch {attn} pgd10 {a.images / (time.perf_counter() - t):.3f}", flush=True)


if __name__ == "__main__":
    main()
