#!/usr/bin/env python3
"""Regenerate the seed corpora in tests/fuzz/corpus/ (run: python3 tests/ref/make_fuzz_seeds.py) (small, committed). Needs only the standard
library; the image seeds are copied from tests/fixtures/images/."""
import json, os, shutil, struct

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz")
C = os.path.join(here, "corpus")


def st(tensors, meta=None, dtype="F32", pad=True):
    """tensors: [(name, shape)] filled with small floats; returns safetensors bytes"""
    hdr, blobs, off = {}, [], 0
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        if dtype == "F32":
            b = struct.pack("<%df" % n, *[(i % 7 - 3) * 0.125 for i in range(n)])
        else:
            b = bytes((i * 37) & 0x3F for i in range(n * size))
        hdr[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def vit(D=4, F=8, K=3, P=2, G=2, depth=1, cls=True, qkv_bias=True, qknorm=False, pool="token"):
    N = G * G + (1 if cls else 0)
    t = [("patch_embed.proj.weight", (D, 3, P, P)), ("patch_embed.proj.bias", (D,))]
    if cls:
        t.append(("cls_token", (1, 1, D)))
    t.append(("pos_embed", (1, N, D)))
    for l in range(depth):
        b = "blocks.%d." % l
        t += [(b + "norm1.weight", (D,)), (b + "norm1.bias", (D,)), (b + "attn.qkv.weight", (3 * D, D))]
        if qkv_bias:
            t.append((b + "attn.qkv.bias", (3 * D,)))
        if qknorm:
            t += [(b + "attn.%s_norm.%s" % (q, w), (D // 2,)) for q in "qk" for w in ("weight", "bias")]
        t += [(b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)), (b + "norm2.weight", (D,)),
              (b + "norm2.bias", (D,)), (b + "mlp.fc1.weight", (F, D)), (b + "mlp.fc1.bias", (F,)),
              (b + "mlp.fc2.weight", (D, F)), (b + "mlp.fc2.bias", (D,))]
    fn = "norm" if pool == "token" else "fc_norm"
    t += [(fn + ".weight", (D,)), (fn + ".bias", (D,)), ("head.weight", (K, D)), ("head.bias", (K,))]
    return t


def write(sub, name, data):
    with open(os.path.join(C, sub, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


S = "fuzz_safetensors"
write(S, "vit_sdpa", st(vit(), {"questbench.num_heads": "2", "questbench.attn": "sdpa"}))
write(S, "vit_quest_avg", st(vit(cls=False, qkv_bias=False, pool="avg"),
                             {"questbench.num_heads": "1", "questbench.attn": "quest", "questbench.mean": "0.5,0.5,0.5",
                              "questbench.crop_pct": "0.9", "questbench.interpolation": "bicubic",
                              "questbench.class_names": "a\nb\nc"}))
write(S, "vit_qknorm_f16", st(vit(qknorm=True), {"questbench.num_heads": "2"}, dtype="F16"))
write(S, "vit_bf16", st(vit(depth=2), {"questbench.num_heads": "2", "questbench.depth": "2"}, dtype="BF16"))
write(S, "two_tensors", st([("a", (2, 3)), ("b\u00e9", (0,))], {"k": "v\\n\"q\""}))
write(S, "empty_obj", struct.pack("<Q", 8) + b"{}      ")
write(S, "unpadded", st([("x", (1,))], pad=False))

I = "fuzz_image"
src = os.path.join(here, "..", "fixtures", "images")
for f in ["png_1x1.png", "png_g1.png", "png_g16.png", "png_p1.png", "png_p8_trns.png", "png_ga16.png",
          "png_rgba8.png", "png_rgb8_adam7.png", "png_rgb16.png", "jpg_1x1.jpg", "jpg_gray.jpg", "jpg_opt.jpg"]:
    shutil.copy(os.path.join(src, f), os.path.join(C, I, f))
for f in sorted(os.listdir(src)):  # a few small JPEG variants (progressive, CMYK, subsampling)
    p = os.path.join(src, f)
    if f.endswith(".jpg") and os.path.getsize(p) <= 2500 and not os.path.exists(os.path.join(C, I, f)):
        shutil.copy(p, os.path.join(C, I, f))

Y = "fuzz_suite_yaml"
write(Y, "full.yaml", """name: seed
output: ${QB_FUZZ_VAR}/out
data: $QB_FUZZ_VAR/cifar10/test
labels: labels.txt
subset: subset.txt
limit: 20
preset: cifar
seed: 7
threads: 2
batch: 8
clean: true
models:
  - name: std
    file: a.safetensors
  - {file: b/quest.safetensors, attention: quest}
corruptions:
  list: [fog, contrast]
  severities: 1,3
attacks:
  - attack: fgsm,pgd
    eps: [1/255, 2/255]
    norm: linf
    steps: 2
    step_size: 0.25eps
    restarts: 1
report:
  baseline_model: std
  paper: quest-vit-ti
""")
write(Y, "minimal.yaml", "models: [{file: m}]\ndata: d\noutput: o\nclean: no\n")
write(Y, "anchors.yaml", "a: &x {file: m}\nmodels: [*x, *x]\ndata: !!str d\noutput: 'o'\ncorruptions: {}\n")
write(Y, "bad.yaml", "name: x\nmodels:\n  - file: a\n   bad: [\n")
write(Y, "flow.yaml", "{models: [{file: m, name: \"n\\t\"}], data: \"$UNSET\", output: |\n  o\n}\n")

R = "fuzz_results_csv"
hdr = ("run_id,model,model_sha256,attention,dataset,preset,kind,corruption,severity,attack,norm,eps,n,correct,"
       "metric,value,seed,version,timestamp\n")
rows = [
    "r1,std,%s,sdpa,cifar10,cifar,clean,,0,,,0,200,20,top1,0.10000000000000001,0,0.1.0,2025-01-01T00:00:00Z" % ("ab" * 32),
    "r1,std,,sdpa,cifar10,cifar,corruption,fog,3,,,0,200,18,top1,0.089999999999999997,0,0.1.0,2025-01-01T00:00:00Z",
    "r1,\"q,uest\",,quest,\"da\"\"ta\",cifar,attack,,0,worst:fgsm+pgd,linf,0.0078431372549019607,200,5,top1,0.025,7,0.1.0,t",
]
write(R, "ok.csv", hdr + "\n".join(rows) + "\n")
write(R, "torn.csv", hdr + rows[0] + "\n" + rows[1][:40])
write(R, "crlf.csv", (hdr + rows[0] + "\n").replace("\n", "\r\n"))
write(R, "header_only.csv", hdr)
