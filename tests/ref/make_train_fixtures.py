#!/usr/bin/python3
"""Reference fixture for questbench's AdamW (lib/train.c adamw_update): five steps of
torch.optim.AdamW (PyTorch 1.13, single-tensor path, the default on the CPU) with lr 1e-2,
weight decay 0.05, default betas and eps, on three parameters, one of them in a no-decay group
(weight_decay 0, as timm does for biases, norms, pos_embed and cls_token).

Run with Debian's python3 (python3-torch 1.13):
    /usr/bin/python3 tests/ref/make_train_fixtures.py
Writes tests/fixtures/train/adamw.safetensors holding
    init.<p>        the parameters before the first step
    grad.<t>.<p>    the gradient given at step t (1..5)
    param.<t>.<p>   the parameters after step t
    exp_avg.5.<p>, exp_avg_sq.5.<p>   the optimizer state after step 5
for p in w (decayed, 4x3), q (decayed, 2x3x2), b (no decay, 5). Deterministic.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vit_fixtures import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "train")


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    shapes = {"w": (4, 3), "q": (2, 3, 2), "b": (5,)}
    params = {n: torch.nn.Parameter(torch.randn(*s, generator=g)) for n, s in shapes.items()}
    opt = torch.optim.AdamW([{"params": [params["w"], params["q"]], "weight_decay": 0.05},
                             {"params": [params["b"]], "weight_decay": 0.0}], lr=1e-2)
    out = {f"init.{n}": p.detach().clone() for n, p in params.items()}
    for t in range(1, 6):
        for n, p in params.items():
            # gradients of very different scales, so eps and the bias corrections both matter
            scale = {1: 1.0, 2: 1e-3, 3: 10.0, 4: 1e-6, 5: 0.5}[t]
            p.grad = torch.randn(*shapes[n], generator=g) * scale
            out[f"grad.{t}.{n}"] = p.grad.clone()
        opt.step()
        for n, p in params.items():
            out[f"param.{t}.{n}"] = p.detach().clone()
    for n, p in params.items():
        out[f"exp_avg.5.{n}"] = opt.state[p]["exp_avg"].clone()
        out[f"exp_avg_sq.5.{n}"] = opt.state[p]["exp_avg_sq"].clone()
    write_safetensors(os.path.join(OUT, "adamw.safetensors"), out, "F32",
                      {"source": "tests/ref/make_train_fixtures.py", "torch": torch.__version__,
                       "lr": "0.01", "weight_decay": "0.05 (w, q); 0 (b)"})
    print("wrote", os.path.join(OUT, "adamw.safetensors"))


if __name__ == "__main__":
    main()
