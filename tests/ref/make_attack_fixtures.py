#!/usr/bin/python3
"""Reference fixtures for the attacks: what PyTorch computes for FGSM/FGM and for PGD
L∞/L2 without random start (torchattacks' PGD and PGDL2 update, written out below) on
small random ViTs.

Run with Debian's python3 (python3-torch 1.13):
    /usr/bin/python3 tests/ref/make_attack_fixtures.py
Writes tests/fixtures/attacks/<name>.safetensors (the model, as make_vit_fixtures.py
writes them) and <name>.ref.safetensors holding:
    x            (B,3,S,S)     clean pixels on the 8-bit grid
    y            (B)           labels (as floats)
    eps_linf, alpha_linf, eps_l2, alpha_l2   (1) float32 radii and steps
    grad         (B,3,S,S)     d CE(f(x), y)/dx per sample
    fgsm         (B,3,S,S)     clip01(x + eps_linf·sign(grad))
    fgm          (B,3,S,S)     clip01(x + eps_l2·grad/sqrt(max(Σgrad², 1e-12)))
    pgd_linf     (T+1,B,3,S,S) PGD L∞ iterates x_0 = x … x_T
    pgd_l2       (T+1,B,3,S,S) PGD L2 iterates
Deterministic: same files on every run.
"""
import os
import sys

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vit_fixtures import MEAN, STD, make_params, vit_forward, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "attacks")

# name, attn, D, H, L, P, S, F, K, pool, class_token, qkv_bias, B
CONFIGS = [
    ("sdpa_attack", "sdpa", 32, 2, 2, 4, 16, 64, 10, "token", True, True, 2),
    ("quest_attack", "quest", 32, 4, 2, 4, 16, 64, 10, "token", True, True, 2),
]
STEPS = 5


def per_sample_grad(p, x, y, cfg):
    attn, D, H, L, P, pool, cls = cfg
    xin = x.clone().requires_grad_(True)
    logits = vit_forward(p, xin, attn, D, H, L, P, pool, cls)
    Fn.cross_entropy(logits, y, reduction="sum").backward()
    return xin.grad.detach()


def pgd_linf(p, x, y, cfg, eps, alpha):
    """torchattacks PGD.forward, random_start=False."""
    adv, out = x.clone(), [x.clone()]
    for _ in range(STEPS):
        g = per_sample_grad(p, adv, y, cfg)
        adv = adv + alpha * g.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1)
        out.append(adv.clone())
    return torch.stack(out)


def pgd_l2(p, x, y, cfg, eps, alpha):
    """torchattacks PGDL2.forward, random_start=False, eps_for_division 1e-10."""
    B = x.shape[0]
    adv, out = x.clone(), [x.clone()]
    for _ in range(STEPS):
        g = per_sample_grad(p, adv, y, cfg)
        gn = torch.norm(g.view(B, -1), p=2, dim=1) + 1e-10
        adv = adv + alpha * g / gn.view(B, 1, 1, 1)
        delta = adv - x
        dn = torch.norm(delta.view(B, -1), p=2, dim=1)
        factor = torch.min(eps / dn, torch.ones_like(dn))
        adv = torch.clamp(x + delta * factor.view(-1, 1, 1, 1), min=0, max=1)
        out.append(adv.clone())
    return torch.stack(out)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for i, (name, attn, D, H, L, P, S, F, K, pool, cls, qkv_bias, B) in enumerate(CONFIGS):
        g = torch.Generator().manual_seed(2000 + i)
        params = make_params(g, attn, D, H, L, P, S, F, K, pool, cls, qkv_bias)
        meta = {"format": "pt", "questbench.schema": "1", "questbench.arch": "vit", "questbench.attn": attn,
                "questbench.num_heads": str(H), "questbench.head_dim": str(D // H),
                "questbench.global_pool": pool, "questbench.norm_eps": "1e-06",
                "questbench.mean": ",".join(map(str, MEAN)), "questbench.std": ",".join(map(str, STD)),
                "questbench.crop_pct": "0.875", "questbench.interpolation": "bicubic",
                "questbench.act": "gelu_erf", "questbench.num_classes": str(K),
                "questbench.source": "tests/ref/make_attack_fixtures.py"}
        if attn == "quest":
            meta["questbench.quest_eps"] = "1e-06"
        write_safetensors(os.path.join(OUT, name + ".safetensors"), params, "F32", meta)

        cfg = (attn, D, H, L, P, pool, cls)
        x = torch.randint(0, 256, (B, 3, S, S), generator=g).float() / 255
        y = torch.randint(0, K, (B,), generator=g)
        f32 = lambda v: torch.tensor([v], dtype=torch.float32)  # noqa: E731
        eps_linf, alpha_linf, eps_l2, alpha_l2 = f32(8 / 255), f32(2 / 255), f32(0.5), f32(0.1)
        grad = per_sample_grad(params, x, y, cfg)
        fgsm = torch.clamp(x + eps_linf.item() * grad.sign(), 0, 1)
        gn = torch.sqrt(torch.clamp((grad ** 2).sum(dim=(1, 2, 3), keepdim=True), min=1e-12))
        fgm = torch.clamp(x + eps_l2.item() * grad / gn, 0, 1)
        ref = {"x": x, "y": y.float(), "eps_linf": eps_linf, "alpha_linf": alpha_linf, "eps_l2": eps_l2,
               "alpha_l2": alpha_l2, "grad": grad, "fgsm": fgsm, "fgm": fgm,
               "pgd_linf": pgd_linf(params, x, y, cfg, eps_linf.item(), alpha_linf.item()),
               "pgd_l2": pgd_l2(params, x, y, cfg, eps_l2.item(), alpha_l2.item())}
        write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref)
        moved = (ref["pgd_linf"][-1] - x).abs().max().item()
        print(f"{name}: {attn} S={S} K={K} B={B} steps={STEPS} max|δ| pgd_linf={moved:.5f}")


if __name__ == "__main__":
    sys.exit(main())
