#!/usr/bin/python3
"""Reference fixtures for the ViT engine: small random ViTs in timm's layout and what
PyTorch computes with them.

Run with Debian's python3 (python3-torch 1.13, python3-pil 9.4):
    /usr/bin/python3 tests/ref/make_vit_fixtures.py
Writes tests/fixtures/vit/<name>.safetensors (the model, timm key names, questbench
metadata) and <name>.ref.safetensors holding:
    x          (B,3,S,S) pixels in [0,1]
    logits     (B,K)     forward output
    dlogits    (B,K)     a fixed random upstream gradient
    dx         (B,3,S,S) d(sum(logits*dlogits))/dx
    grad.<key>           the same loss's gradient for every parameter (timm key)
The forward below restates timm's VisionTransformer.forward (vision_transformer.py,
Attention, Mlp, LayerNorm eps 1e-6, exact GELU); QUEST replaces q·kᵀ·scale by
q·normalize(k)ᵀ. Deterministic: same files on every run.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as Fn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "vit")

# name, attn, D, H, L, P, S, F, K, pool, class_token, qkv_bias, dtype, B
CONFIGS = [
    ("sdpa_tiny", "sdpa", 32, 2, 2, 4, 16, 64, 10, "token", True, True, "F32", 3),
    ("qknorm_small", "qknorm", 48, 3, 2, 8, 32, 96, 7, "token", True, True, "F32", 2),
    ("quest_deep", "quest", 64, 4, 3, 4, 20, 256, 5, "token", True, True, "F32", 2),
    ("quest_avg", "quest", 32, 4, 2, 4, 12, 128, 6, "avg", True, False, "F32", 2),
    ("sdpa_avg_nocls", "sdpa", 24, 2, 1, 4, 8, 48, 3, "avg", False, True, "F32", 2),
    ("qknorm_f16", "qknorm", 32, 2, 2, 4, 16, 64, 4, "token", True, True, "F16", 2),
    ("quest_bf16", "quest", 32, 2, 2, 4, 16, 64, 4, "token", True, True, "BF16", 2),
    # 32-px, 10-class models for the demo suite and the nightly gate (random weights, crop_pct 1)
    ("cifar_sdpa", "sdpa", 32, 2, 2, 4, 32, 64, 10, "token", True, True, "F32", 2),
    ("cifar_quest", "quest", 32, 2, 2, 4, 32, 64, 10, "token", True, True, "F32", 2),
    # branches the ones above miss: qknorm averaging with a class token; quest without one and
    # an eps above many key norms (the clamp); patch 5 with an odd head width and no qkv bias
    ("qknorm_avg_cls", "qknorm", 16, 2, 2, 4, 8, 32, 5, "avg", True, True, "F32", 2),
    ("quest_nocls_clamp", "quest", 16, 2, 2, 4, 8, 32, 5, "avg", False, True, "F32", 2),
    ("sdpa_p5_nobias", "sdpa", 30, 2, 2, 5, 15, 60, 5, "token", True, False, "F32", 2),
]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EPS, QUEST_EPS = 1e-6, 1e-6
# per-fixture QUEST eps (default QUEST_EPS): about the median key norm, so that a good share of
# keys take the clamped branch k / eps (tests/lib/test_vit.c checks the share)
QUEST_EPS_OF = {"quest_nocls_clamp": 3.0}


def make_params(g, attn, D, H, L, P, S, F, K, pool, cls, qkv_bias):
    hd = D // H
    N = (S // P) ** 2 + (1 if cls else 0)
    p = {}

    def rn(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    p["patch_embed.proj.weight"] = rn(D, 3, P, P, std=0.1)
    p["patch_embed.proj.bias"] = rn(D, std=0.05)
    if cls:
        p["cls_token"] = rn(1, 1, D, std=0.5)
    p["pos_embed"] = rn(1, N, D, std=0.3)
    for l in range(L):
        b = f"blocks.{l}."
        p[b + "norm1.weight"] = 1 + rn(D, std=0.1)
        p[b + "norm1.bias"] = rn(D, std=0.05)
        p[b + "attn.qkv.weight"] = rn(3 * D, D, std=0.6 / math.sqrt(D) * 2)
        if qkv_bias:
            p[b + "attn.qkv.bias"] = rn(3 * D, std=0.2)
        if attn == "qknorm":
            p[b + "attn.q_norm.weight"] = 1 + rn(hd, std=0.2)
            p[b + "attn.q_norm.bias"] = rn(hd, std=0.1)
            p[b + "attn.k_norm.weight"] = 1 + rn(hd, std=0.2)
            p[b + "attn.k_norm.bias"] = rn(hd, std=0.1)
        p[b + "attn.proj.weight"] = rn(D, D, std=1 / math.sqrt(D))
        p[b + "attn.proj.bias"] = rn(D, std=0.05)
        p[b + "norm2.weight"] = 1 + rn(D, std=0.1)
        p[b + "norm2.bias"] = rn(D, std=0.05)
        p[b + "mlp.fc1.weight"] = rn(F, D, std=1 / math.sqrt(D))
        p[b + "mlp.fc1.bias"] = rn(F, std=0.1)
        p[b + "mlp.fc2.weight"] = rn(D, F, std=1 / math.sqrt(F))
        p[b + "mlp.fc2.bias"] = rn(D, std=0.05)
    fn = "norm" if pool == "token" else "fc_norm"
    p[fn + ".weight"] = 1 + rn(D, std=0.1)
    p[fn + ".bias"] = rn(D, std=0.05)
    p["head.weight"] = rn(K, D, std=1 / math.sqrt(D))
    p["head.bias"] = rn(K, std=0.1)
    return p


def vit_forward(p, x, attn, D, H, L, P, pool, cls, quest_eps=QUEST_EPS, knorms=None):
    """timm VisionTransformer.forward (eval) with the input normalisation in front."""
    hd = D // H
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    B = x.shape[0]
    t = Fn.conv2d(x, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"], stride=P)
    t = t.flatten(2).transpose(1, 2)
    if cls:
        t = torch.cat([p["cls_token"].expand(B, -1, -1), t], dim=1)
    t = t + p["pos_embed"]
    N = t.shape[1]
    for l in range(L):
        b = f"blocks.{l}."
        h = Fn.layer_norm(t, (D,), p[b + "norm1.weight"], p[b + "norm1.bias"], EPS)
        qkv = Fn.linear(h, p[b + "attn.qkv.weight"], p.get(b + "attn.qkv.bias"))
        qkv = qkv.reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scale = hd ** -0.5
        if attn == "qknorm":
            q = Fn.layer_norm(q, (hd,), p[b + "attn.q_norm.weight"], p[b + "attn.q_norm.bias"], EPS)
            k = Fn.layer_norm(k, (hd,), p[b + "attn.k_norm.weight"], p[b + "attn.k_norm.bias"], EPS)
        if attn == "quest":
            if knorms is not None:
                knorms.append(k.detach().norm(dim=-1).flatten())
            k = Fn.normalize(k, p=2, dim=-1, eps=quest_eps)
            scale = 1.0
        a = (q * scale) @ k.transpose(-2, -1)
        a = a.softmax(dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, N, D)
        t = t + Fn.linear(o, p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
        h = Fn.layer_norm(t, (D,), p[b + "norm2.weight"], p[b + "norm2.bias"], EPS)
        h = Fn.linear(Fn.gelu(Fn.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"])),
                      p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        t = t + h
    if pool == "token":
        f = Fn.layer_norm(t, (D,), p["norm.weight"], p["norm.bias"], EPS)[:, 0]
    else:
        f = Fn.layer_norm(t[:, 1 if cls else 0:].mean(dim=1), (D,), p["fc_norm.weight"], p["fc_norm.bias"], EPS)
    return Fn.linear(f, p["head.weight"], p["head.bias"])


def tensor_bytes(t, dtype):
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.float().numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.half().numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype="F32", meta=None):
    """The reference writer's layout: names sorted, compact JSON, padded to 8 bytes."""
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in sorted(tensors):
        b = tensor_bytes(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rounded(t, dtype):
    if dtype == "F16":
        return t.half().float()
    if dtype == "BF16":
        return t.to(torch.bfloat16).float()
    return t


def pil_eval_transform(img, size, crop_pct=0.875):
    """timm eval transform with PIL: shorter side to floor(size/crop_pct) (bicubic), centre
    crop, ToTensor (torchvision 0.14 semantics restated; torchvision is not installed)."""
    from PIL import Image
    scale = math.floor(size / crop_pct)
    w, h = img.size
    if w <= h:
        nw, nh = scale, int(scale * h / w)
    else:
        nh, nw = scale, int(scale * w / h)
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    t = torch.tensor(list(img.getdata()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return t.float().div(255.0)


def write_predict_fixture(name, params, attn, D, H, L, P, S, pool, cls, g):
    """Two odd-sized images (PNG and JPEG) and the logits PyTorch gives after PIL's pipeline."""
    from PIL import Image
    outs = []
    for j, (w, h, ext) in enumerate([(37, 29, "png"), (23, 41, "jpg")]):
        px = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8)
        img = Image.fromarray(px.numpy(), "RGB")
        path = os.path.join(OUT, f"{name}_img{j}.{ext}")
        img.save(path, quality=90) if ext == "jpg" else img.save(path)
        img = Image.open(path).convert("RGB")
        outs.append(pil_eval_transform(img, S))
    x = torch.stack(outs)
    with torch.no_grad():
        logits = vit_forward(params, x, attn, D, H, L, P, pool, cls)
    with open(os.path.join(OUT, f"{name}_predict.csv"), "w") as f:
        for j in range(x.shape[0]):
            f.write(",".join("%.9g" % v for v in logits[j].tolist()) + "\n")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for i, (name, attn, D, H, L, P, S, F, K, pool, cls, qkv_bias, dtype, B) in enumerate(CONFIGS):
        g = torch.Generator().manual_seed(1000 + i)
        params = make_params(g, attn, D, H, L, P, S, F, K, pool, cls, qkv_bias)
        params = {k: rounded(v, dtype) for k, v in params.items()}
        meta = {"format": "pt", "questbench.schema": "1", "questbench.arch": "vit", "questbench.attn": attn,
                "questbench.num_heads": str(H), "questbench.head_dim": str(D // H),
                "questbench.global_pool": pool, "questbench.norm_eps": "1e-06",
                "questbench.mean": ",".join(map(str, MEAN)), "questbench.std": ",".join(map(str, STD)),
                "questbench.crop_pct": "1.0" if name.startswith("cifar_") else "0.875",
                "questbench.interpolation": "bicubic",
                "questbench.act": "gelu_erf", "questbench.num_classes": str(K),
                "questbench.source": "tests/ref/make_vit_fixtures.py"}
        qeps = QUEST_EPS_OF.get(name, QUEST_EPS)
        if attn == "quest":
            meta["questbench.quest_eps"] = "1e-06" if qeps == QUEST_EPS else repr(qeps)
        write_safetensors(os.path.join(OUT, name + ".safetensors"), params, dtype, meta)

        x = torch.rand(B, 3, S, S, generator=g)
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        xin = x.clone().requires_grad_(True)
        knorms = []
        logits = vit_forward(leaves, xin, attn, D, H, L, P, pool, cls, qeps, knorms)
        dlogits = torch.randn(B, K, generator=g)
        (logits * dlogits).sum().backward()
        ref = {"x": x, "logits": logits.detach(), "dlogits": dlogits, "dx": xin.grad}
        for k, v in leaves.items():
            ref["grad." + k] = v.grad
        write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref)
        if name in ("sdpa_tiny", "quest_deep"):
            write_predict_fixture(name, params, attn, D, H, L, P, S, pool, cls, g)
        clamp = ""
        if name in QUEST_EPS_OF:
            kn = torch.cat(knorms)
            clamp = f" keys below eps {qeps}: {(kn < qeps).float().mean():.2f}"
        print(f"{name}: {attn} D={D} H={H} L={L} P={P} S={S} K={K} {dtype} max|logit|={logits.abs().max():.3f}{clamp}")


if __name__ == "__main__":
    sys.exit(main())
