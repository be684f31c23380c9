#!/usr/bin/python3
"""make_image_fixtures.py — inputs and Pillow reference outputs for tests/lib/test_{image,resize}.c.

Run with Debian's interpreter (Pillow 9.4.0, torch 1.13):

    /usr/bin/python3 tests/ref/make_image_fixtures.py

Writes tests/fixtures/images/. Deterministic: fixed seeds, and PNGs written either by the tiny
writer below or by Pillow with fixed settings, so a re-run produces identical files.

File kinds:
  *.png, *.jpg   inputs (or, for rs_* and ev_* outputs, lossless PNG references)
  *.rgb          raw (h, w, 3) uint8 of Image.open(input).convert('RGB') — the decode references
  tensor_lut.bin 256 little-endian float32: torchvision ToTensor of the byte values 0..255
  imagenet_sample.txt  CRC-32s of Pillow's results on $QUESTBENCH_DATA/imagenet-sample (when set)
  README.txt     Pillow version and the list of cases

torchvision is not installed for /usr/bin/python3, so the eval transform (Resize(int) +
CenterCrop + ToTensor of torchvision 0.14) is re-stated below line for line from its source.
"""
import io
import math
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "images")
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "box": Image.BOX}
written = []


def save_bytes(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    written.append(name)


def save_png(name, im):
    # Pillow's PNG writer is deterministic for fixed settings; no text/time chunks are added.
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=False, compress_level=9)
    save_bytes(name, buf.getvalue())


def save_jpeg(name, im, **kw):
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    save_bytes(name, buf.getvalue())


def ref_rgb(name):
    """Decode reference: PIL's .convert('RGB') of the stored file, as raw bytes."""
    im = Image.open(os.path.join(OUT, name))
    im.load()
    with warnings.catch_warnings():  # P + tRNS bytes: "should be converted to RGBA" (irrelevant)
        warnings.simplefilter("ignore")
        rgb = im.convert("RGB")
    base = name.rsplit(".", 1)[0]
    save_bytes(base + ".rgb", rgb.tobytes())
    return rgb


# ---------------------------------------------------------------- tiny PNG writer (any depth/type)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(a, depth):
    """a: (h, w*channels) integer samples -> list of packed row bytes."""
    rows = []
    for r in a:
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = (len(r) + per - 1) // per * per
            v = np.zeros(n, dtype=np.uint32)
            v[: len(r)] = r
            v = v.reshape(-1, per)
            byte = np.zeros(len(v), dtype=np.uint32)
            for i in range(per):
                byte |= v[:, i] << (8 - depth * (i + 1))
            rows.append(byte.astype(np.uint8).tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, depth, ctype, extra=b"", interlace=False):
    """samples: (h, w, channels) array of integer samples. Filter type 0 (None) on every row."""
    h, w, c = samples.shape
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            raw += b"".join(b"\0" + r for r in pack_rows(sub.reshape(sub.shape[0], -1), depth))
    else:
        raw = b"".join(b"\0" + r for r in pack_rows(samples.reshape(h, w * c), depth))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- synthetic content
def noise(w, h, seed, c=3):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, c)).astype(np.uint8)


def blocks(w, h, seed, block=12):
    """Random 12x12 colour blocks (hard edges exercise the clamp) + a noise patch + a ramp:
    compresses well, still hits every resampling phase."""
    rs = np.random.RandomState(seed)
    bw, bh = (w + block - 1) // block, (h + block - 1) // block
    a = rs.randint(0, 256, size=(bh, bw, 3)).astype(np.uint8)
    a = np.repeat(np.repeat(a, block, 0), block, 1)[:h, :w].copy()
    ph, pw = min(48, h // 3), min(48, w // 3)
    a[h // 3 : h // 3 + ph, w // 3 : w // 3 + pw] = rs.randint(0, 256, size=(ph, pw, 3))
    ramp = (np.arange(w) * 255 // max(w - 1, 1)).astype(np.uint8)
    a[-10:, :, 0] = ramp
    a[-10:, :, 1] = 255 - ramp
    return a


def smooth(w, h, seed):
    """Photo-like content for JPEG: smooth gradients, a disc, mild noise."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 5.0 + 1.0) * np.cos(y / 7.0)
    g = 255.0 * x / max(w - 1, 1)
    b = np.where((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 3) ** 2, 230.0, 30.0)
    a = np.stack([r, g, b], -1) + rs.normal(0, 8, size=(h, w, 3))
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- decode fixtures
def make_decode():
    w, h = 13, 7
    rs = np.random.RandomState(7)
    g8 = rs.randint(0, 256, size=(h, w, 1))
    # 16-bit grey mixes values below 256 (kept) with larger ones (PIL clips them to 255).
    g16 = rs.randint(0, 65536, size=(h, w, 1))
    g16[::2, ::3] = rs.randint(0, 256, size=g16[::2, ::3].shape)
    cases = {
        "png_g1.png": png_bytes(rs.randint(0, 2, size=(h, w, 1)), 1, 0),
        "png_g2.png": png_bytes(rs.randint(0, 4, size=(h, w, 1)), 2, 0),
        "png_g4.png": png_bytes(rs.randint(0, 16, size=(h, w, 1)), 4, 0),
        "png_g8.png": png_bytes(g8, 8, 0),
        "png_g8_trns.png": png_bytes(g8, 8, 0, chunk(b"tRNS", struct.pack(">H", int(g8[0, 0, 0])))),
        "png_g16.png": png_bytes(g16, 16, 0),
        "png_ga8.png": png_bytes(rs.randint(0, 256, size=(h, w, 2)), 8, 4),
        "png_ga16.png": png_bytes(rs.randint(0, 65536, size=(h, w, 2)), 16, 4),
        "png_rgb8.png": png_bytes(rs.randint(0, 256, size=(h, w, 3)), 8, 2),
        "png_rgb16.png": png_bytes(rs.randint(0, 65536, size=(h, w, 3)), 16, 2),
        "png_rgb16_trns.png": png_bytes(rs.randint(0, 65536, size=(h, w, 3)), 16, 2, chunk(b"tRNS", b"\0\1\0\2\0\3")),
        "png_rgba8.png": png_bytes(rs.randint(0, 256, size=(h, w, 4)), 8, 6),
        "png_rgba16.png": png_bytes(rs.randint(0, 65536, size=(h, w, 4)), 16, 6),
        "png_rgb8_adam7.png": png_bytes(rs.randint(0, 256, size=(h, w, 3)), 8, 2, interlace=True),
        "png_rgba16_adam7.png": png_bytes(rs.randint(0, 65536, size=(h, w, 4)), 16, 6, interlace=True),
        "png_1x1.png": png_bytes(np.array([[[12, 200, 99]]]), 8, 2),
    }
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        pal = rs.randint(0, 256, size=(n, 3)).astype(np.uint8).tobytes()
        cases[f"png_p{depth}.png"] = png_bytes(rs.randint(0, n, size=(h, w, 1)), depth, 3, chunk(b"PLTE", pal))
    # Short palette (5 entries) with indices past its end: PIL maps index i to grey (i, i, i).
    pal5 = rs.randint(0, 256, size=(5, 3)).astype(np.uint8).tobytes()
    idx = rs.randint(0, 256, size=(h, w, 1))
    idx[0, :5, 0] = [0, 1, 2, 3, 4]
    cases["png_p8_short.png"] = png_bytes(idx, 8, 3, chunk(b"PLTE", pal5))
    cases["png_p8_trns.png"] = png_bytes(idx % 5, 8, 3, chunk(b"PLTE", pal5) + chunk(b"tRNS", b"\x00\x80\xff"))
    for name, data in cases.items():
        save_bytes(name, data)
        ref_rgb(name)

    # JPEG: saved by Pillow (libjpeg-turbo), decoded by Pillow for the reference.
    photo = Image.fromarray(smooth(37, 23, 11))
    big = Image.fromarray(smooth(61, 39, 12))
    jpegs = [
        ("jpg_420.jpg", photo, dict(quality=85)),
        ("jpg_444.jpg", photo, dict(quality=90, subsampling=0)),
        ("jpg_422.jpg", big, dict(quality=75, subsampling=1)),
        ("jpg_prog.jpg", big, dict(quality=80, progressive=True)),
        ("jpg_opt.jpg", photo, dict(quality=60, optimize=True)),
        ("jpg_gray.jpg", big.convert("L"), dict(quality=85)),
        ("jpg_cmyk.jpg", photo.convert("CMYK"), dict(quality=90)),
        ("jpg_1x1.jpg", Image.new("RGB", (1, 1), (12, 200, 99)), dict(quality=95)),
    ]
    for name, im, kw in jpegs:
        save_jpeg(name, im, **kw)
        ref_rgb(name)
    # One flipped byte in the entropy-coded data: libjpeg only warns, Pillow decodes the damage.
    with open(os.path.join(OUT, "jpg_422.jpg"), "rb") as f:
        d = bytearray(f.read())
    d[len(d) // 2] ^= 0x55
    save_bytes("jpg_corrupt.jpg", bytes(d))
    ref_rgb("jpg_corrupt.jpg")


# ---------------------------------------------------------------- resize fixtures
RESIZE_CASES = [  # (input w, h, generator), (output w, h)
    ((37, 23, "noise"), (224, 224)),
    ((500, 375, "blocks"), (330, 248)),
    ((7, 5, "noise"), (3, 2)),
    ((13, 17, "noise"), (26, 34)),
    ((1, 6, "noise"), (3, 2)),
    ((5, 9, "noise"), (5, 4)),
    ((13, 17, "noise"), (5, 7)),
]


def resize_input(w, h, kind):
    a = noise(w, h, 1000 + w * 7 + h) if kind == "noise" else blocks(w, h, 2000 + w + h)
    return Image.fromarray(a)


def make_resize():
    made = set()
    for (w, h, kind), (ow, oh) in RESIZE_CASES:
        src_name = f"rs_{w}x{h}.png"
        im = resize_input(w, h, kind)
        if src_name not in made:
            save_png(src_name, im)
            made.add(src_name)
        for fname, f in FILTERS.items():
            out = im.resize((ow, oh), f)
            save_png(f"rs_{w}x{h}_{ow}x{oh}_{fname}.png", out)
    # The 1-row mode-L vectors of engine.md §4.5, checked here against Pillow itself.
    row = Image.frombytes("L", (4, 1), bytes([0, 255, 0, 255]))
    assert list(row.resize((2, 1), Image.BICUBIC).getdata()) == [107, 148]
    assert list(row.resize((7, 1), Image.BICUBIC).getdata()) == [0, 87, 251, 128, 4, 168, 255]
    assert list(row.resize((7, 1), Image.BILINEAR).getdata()) == [0, 91, 237, 128, 18, 164, 255]


# ---------------------------------------------------------------- eval pipeline (torchvision 0.14)
def tv_resize_shorter(img, size, interpolation):
    """torchvision.transforms.functional.resize(img, size:int) on a PIL image."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_h, new_w) == (h, w):
        return img
    return img.resize((new_w, new_h), interpolation)


def tv_center_crop(img, out):
    """torchvision.transforms.functional.center_crop(img, [out, out]) on a PIL image."""
    w, h = img.size
    if out > w or out > h:
        pl = (out - w) // 2 if out > w else 0
        pt = (out - h) // 2 if out > h else 0
        pr = (out - w + 1) // 2 if out > w else 0
        pb = (out - h + 1) // 2 if out > h else 0
        padded = Image.new("RGB", (w + pl + pr, h + pt + pb), (0, 0, 0))  # F.pad(fill=0), constant
        padded.paste(img, (pl, pt))
        img = padded
        w, h = img.size
        if (w, h) == (out, out):
            return img
    top = int(round((h - out) / 2.0))
    left = int(round((w - out) / 2.0))
    return img.crop((left, top, left + out, top + out))


EVAL_CASES = [  # name, input (w, h, generator), size, crop_pct, filter
    ("ev_500x375_s224_c0.9_bicubic", (500, 375, "blocks"), 224, 0.9, "bicubic"),
    ("ev_500x375_s224_c0.875_bilinear", (500, 375, "blocks"), 224, 0.875, "bilinear"),
    ("ev_333x500_s224_c0.875_bicubic", (333, 500, "blocks"), 224, 0.875, "bicubic"),
    ("ev_37x23_s64_c0.9_bicubic", (37, 23, "noise"), 64, 0.9, "bicubic"),
    ("ev_248x331_s224_c0.9_bicubic", (248, 331, "blocks"), 224, 0.9, "bicubic"),  # identity resize, top 53.5->54
    ("ev_13x17_s32_c1.25_bicubic", (13, 17, "noise"), 32, 1.25, "bicubic"),  # 25x32: pads 3 left, 4 right
    ("ev_7x5_s16_c0.9_box", (7, 5, "noise"), 16, 0.9, "box"),
    ("ev_7x5_s16_c0.875_nearest", (7, 5, "noise"), 16, 0.875, "nearest"),
]


def make_eval():
    import torch

    lut = torch.arange(256, dtype=torch.uint8).float().div(255)  # ToTensor: ByteTensor -> float /255
    save_bytes("tensor_lut.bin", lut.numpy().astype("<f4").tobytes())
    lines = []
    for name, (w, h, kind), size, crop_pct, fname in EVAL_CASES:
        src_name = f"rs_{w}x{h}.png"
        im = resize_input(w, h, kind)
        if not os.path.exists(os.path.join(OUT, src_name)):
            save_png(src_name, im)
        scale = math.floor(size / crop_pct)
        r = tv_resize_shorter(im, scale, FILTERS[fname])
        c = tv_center_crop(r, size)
        # ToTensor of the crop must be exactly lut[u8] (what the C test checks).
        t = torch.from_numpy(np.asarray(c).copy()).permute(2, 0, 1).contiguous().float().div(255)
        assert torch.equal(t, lut[torch.from_numpy(np.asarray(c).copy()).permute(2, 0, 1).long()])
        save_png(name + ".png", c)
        lines.append(f"{name}: {src_name} size {size} crop_pct {crop_pct} {fname} -> resized {r.size[0]}x{r.size[1]}")
    return lines


# ---------------------------------------------------------------- real photos ($QUESTBENCH_DATA, not committed)
SAMPLE_DIR = os.path.join(os.environ.get("QUESTBENCH_DATA", "/nonexistent-QUESTBENCH_DATA-unset"), "imagenet-sample")
SAMPLE_LIST = "imagenet_sample.txt"


def make_imagenet_sample():
    """CRC-32 of Pillow's decode and of the eval crops of each $QUESTBENCH_DATA/imagenet-sample JPEG, so the C test
    can check real-world files (grey, odd sizes, odd encoders) without committing them."""
    names = sorted(f for f in os.listdir(SAMPLE_DIR) if f.endswith(".JPEG"))
    lines = ["# name w h crc32(decode) crc32(crop 224 0.875 bicubic) crc32(crop 224 0.9 bilinear)"]
    for name in names:
        im = Image.open(os.path.join(SAMPLE_DIR, name)).convert("RGB")
        crops = []
        for crop_pct, f in ((0.875, Image.BICUBIC), (0.9, Image.BILINEAR)):
            r = tv_resize_shorter(im, math.floor(224 / crop_pct), f)
            crops.append(zlib.crc32(tv_center_crop(r, 224).tobytes()))
        lines.append(f"{name} {im.size[0]} {im.size[1]} {zlib.crc32(im.tobytes()):08x} {crops[0]:08x} {crops[1]:08x}")
    save_bytes(SAMPLE_LIST, ("\n".join(lines) + "\n").encode())


def main():
    os.makedirs(OUT, exist_ok=True)
    have_sample = os.path.isdir(SAMPLE_DIR)
    for f in os.listdir(OUT):  # start clean so stale files never linger
        if f != SAMPLE_LIST or have_sample:
            os.remove(os.path.join(OUT, f))
    make_decode()
    make_resize()
    eval_lines = make_eval()
    if have_sample:
        make_imagenet_sample()
    else:
        print(f"note: {os.path.normpath(SAMPLE_DIR)} missing; kept the existing {SAMPLE_LIST}")
    readme = [
        "Generated by tests/ref/make_image_fixtures.py with /usr/bin/python3 — do not edit by hand.",
        f"Pillow {PIL.__version__} (libjpeg-turbo {PIL.features.version('libjpeg_turbo')}, "
        f"zlib {PIL.features.version('zlib')}), NumPy {np.__version__}, Python {sys.version.split()[0]}.",
        "*.rgb = raw (h,w,3) bytes of Image.open(f).convert('RGB'); rs_<in>_<out>_<filter>.png = Image.resize;",
        "ev_* = torchvision 0.14 Resize(floor(size/crop_pct)) + CenterCrop(size) as uint8; tensor_lut.bin = ToTensor of 0..255.",
        f"{SAMPLE_LIST} = CRC-32s for the JPEGs of $QUESTBENCH_DATA/imagenet-sample (decode and two eval crops).",
        "",
    ] + eval_lines
    save_bytes("README.txt", ("\n".join(readme) + "\n").encode())
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in written)
    print(f"wrote {len(written)} files, {total} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    import PIL.features  # noqa: F401  (for the version line)

    main()
