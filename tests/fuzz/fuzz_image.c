/* fuzz_image.c — libFuzzer harness for the PNG and JPEG decoders (qb_image_load_memory), with
 * a small pixel limit so that a header claiming a huge image is refused before allocation, and
 * the eval preprocessing of what decodes (resize + crop, the path every command takes).
 * Built and run by `make fuzz`. */
#include "image.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qb_max_image_pixels = 1 << 12; /* 4 Kpx (64x64): bounds the fuzzer's memory and time per input */
    qb_image img;
    if (qb_image_load_memory(&img, data, size, "fuzz") != 0) {
        if (img.rgb) abort(); /* documented: NULL on error */
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || (uint64_t)img.w * (uint64_t)img.h > qb_max_image_pixels) abort();
    volatile uint8_t sink = img.rgb[(size_t)img.w * img.h * 3 - 1]; /* the whole buffer is there */
    (void)sink;
    float out[3 * 16 * 16];
    qb_preprocess_eval(out, &img, 16, 0.875, (qb_interp)(size % 4));
    qb_image_free(&img);
    return 0;
}
