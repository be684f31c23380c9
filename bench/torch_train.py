#!/usr/bin/python3
"""PyTorch reference for bench_train: the CIFAR-10 demo ViT (timm layout, timm-style init) trained
with torch.optim.AdamW (no decay on biases, norms, pos_embed, cls_token), label-smoothed
cross-entropy, random crop (pad 4) + flip done on tensors, batch 128, on the CPU with the same
thread count. Run with Debian's python3-torch 1.13:
    /usr/bin/python3 bench/torch_train.py [--threads N] [--batch B] [--iters N]
Prints lines `torch <attn> train <images/s>` that bench/run_train.sh compares with questbench."""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_vit_fixtures import make_params, vit_forward  # noqa: E402


def augment(x, g, pad=4):
    B, C, S, _ = x.shape
    xp = Fn.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=g)
    flip = torch.randint(0, 2, (B,), generator=g)
    for b in range(B):
        crop = xp[b, :, oy[b]:oy[b] + S, ox[b]:ox[b] + S]
        out[b] = crop.flip(-1) if flip[b] else crop
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--attn", default="sdpa,qknorm,quest")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=float, default=2)
    ap.add_argument("--patch", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    D, H, L, P, S, K = a.dim, a.heads, a.depth, a.patch, 32, 10
    F = int(round(D * a.mlp_ratio))
    print(f"# torch {torch.__version__} train step, same ViT, batch {a.batch}, {a.threads} threads")
    for attn in a.attn.split(","):
        g = torch.Generator().manual_seed(0)
        p = make_params(g, attn, D, H, L, P, S, F, K, "token", True, True)
        for name, t in p.items():
            if name.endswith("weight") and "norm" not in name:
                t.normal_(0, 0.02, generator=g)
        params = {n: torch.nn.Parameter(t) for n, t in p.items()}
        decay = [t for n, t in params.items() if t.ndim > 1 and n not in ("pos_embed", "cls_token")]
        no_decay = [t for n, t in params.items() if not (t.ndim > 1 and n not in ("pos_embed", "cls_token"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
        x8 = torch.randint(0, 256, (a.batch * 4, 3, S, S), generator=g, dtype=torch.uint8)
        y = torch.arange(a.batch * 4) % K
        t0 = 0.0
        for it in range(a.iters + 1):
            if it == 1:
                t0 = time.perf_counter()
            sl = slice((it % 4) * a.batch, (it % 4 + 1) * a.batch)
            x = augment(x8[sl].float() / 255.0, g)
            out = vit_forward(params, x, attn, D, H, L, P, "token", True)
            loss = Fn.cross_entropy(out, y[sl], label_smoothing=0.1)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), float("inf"))  # the grad norm questbench logs
            opt.step()
        print(f"torch {attn} train {a.iters * a.batch / (time.perf_counter() - t0):.2f}", flush=True)


if __name__ == "__main__":
    main()
