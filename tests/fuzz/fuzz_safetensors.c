/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (st_open_buffer), and,
 * for inputs it accepts, the model validation that follows (qb_model_load through a memfd:
 * architecture inference, metadata, the expected-tensor check and the dtype conversion).
 * Built and run by `make fuzz`. */
#include "model.h"
#include "safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    if (st_open_buffer(&f, data, size, "fuzz") != 0) return 0;
    /* touch what a caller touches: names, metadata, every tensor's bytes as fp32 */
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) == NULL) abort();
        if (t->numel <= (1u << 16)) {
            float *dst = malloc((size_t)t->numel * sizeof *dst + 1);
            if (dst) { st_to_f32(&f, t, dst); free(dst); }
        }
    }
    for (int i = 0; i < f.n_meta; i++)
        if (st_meta_get(&f, f.meta[i].key) == NULL) abort();
    st_close(&f);

    /* the model loader reads a path: give it the same bytes through an anonymous file */
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        qb_model m;
        if (qb_model_load(&m, path, NULL) == 0) qb_model_free(&m);
    }
    close(fd);
    return 0;
}
