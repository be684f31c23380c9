#!/usr/bin/env bash
# make data: find CIFAR-10 for `questbench train` / `make demo`, or fetch it, or say where to put it.
# Accepted layouts under DATA ($QUESTBENCH_DATA):
#   DATA/cifar10/{train,test}/<class>/*.png|jpg          (format: folder; 50000 + 10000 images)
#   DATA/cifar10/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin   (format: cifar-binary)
# With a network and neither layout present, the official binary archive is downloaded, its
# MD5 checked and it is unpacked (training reads it directly with format: cifar-binary; the
# demo's evaluation needs the image folders). Otherwise it prints where to put the data and
# exits 4.
set -uo pipefail
DATA=${1:-${QUESTBENCH_DATA:-}}
if [ -z "$DATA" ]; then echo "data: set QUESTBENCH_DATA (or DATA=...) to the folder that holds cifar10/"; exit 4; fi
C="$DATA/cifar10"
URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
MD5=c32a1d4ab5d03f1284b67883e8d87530
classes="airplane automobile bird cat deer dog frog horse ship truck"

folder_ok=1
for split in train test; do
    for k in $classes; do
        [ -d "$C/$split/$k" ] || { folder_ok=0; break 2; }
    done
done
bin_ok=1
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    [ "$(stat -c %s "$C/cifar-10-batches-bin/$f.bin" 2>/dev/null)" = 30730000 ] || { bin_ok=0; break; }
done
if [ $folder_ok = 1 ]; then
    echo "data: CIFAR-10 image folders found: $C/train ($(find "$C/train" -type f | wc -l) files), $C/test ($(find "$C/test" -type f | wc -l) files) -> format: folder"
fi
if [ $bin_ok = 1 ]; then
    echo "data: CIFAR-10 binary batches found: $C/cifar-10-batches-bin -> format: cifar-binary"
fi
[ $folder_ok = 1 ] || [ $bin_ok = 1 ] && exit 0

# try the official archive (needs a network; 162 MB)
if command -v curl >/dev/null && mkdir -p "$C" 2>/dev/null; then
    echo "data: CIFAR-10 not found under $C; trying $URL"
    if curl -fsSL --connect-timeout 10 -o "$C/cifar-10-binary.tar.gz.part" "$URL"; then
        if [ "$(md5sum "$C/cifar-10-binary.tar.gz.part" | cut -d' ' -f1)" = $MD5 ]; then
            mv "$C/cifar-10-binary.tar.gz.part" "$C/cifar-10-binary.tar.gz"
            tar -xzf "$C/cifar-10-binary.tar.gz" -C "$C" && echo "data: CIFAR-10 binary batches in $C/cifar-10-batches-bin -> format: cifar-binary" && exit 0
        else
            echo "data: checksum mismatch for the downloaded archive (want MD5 $MD5); removed"
        fi
    fi
    rm -f "$C/cifar-10-binary.tar.gz.part"
fi
cat <<MSG
data: CIFAR-10 not found and not downloadable here. Put it in one of these places:
  1. image folders: $C/train/<class>/*.png|jpg and $C/test/<class>/*.png|jpg
     with the 10 class folders $classes
     (the layout of torchvision's CIFAR10 written out as images); configs use format: folder
  2. the official binary archive $URL (MD5 $MD5),
     unpacked so that $C/cifar-10-batches-bin/data_batch_1.bin ... test_batch.bin exist;
     set format: cifar-binary and data: $C/cifar-10-batches-bin in the training config
Then run: QUESTBENCH_DATA=$DATA make data
MSG
exit 4
