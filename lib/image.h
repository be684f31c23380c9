/* image.h — decode PNG/JPEG to 8-bit RGB, PIL-exact resize, timm eval preprocessing.
 * Spec: engine.md §4. */
#ifndef QB_IMAGE_H
#define QB_IMAGE_H
#include "qb.h"

typedef struct {
    int w, h;          /* width, height in pixels */
    uint8_t *rgb;      /* (h, w, 3) interleaved RGB8, row-major; owned */
} qb_image;

/* Maximum pixel count accepted by the decoders (default 178,956,970 as PIL's
 * MAX_IMAGE_PIXELS·2 bound is 2·89,478,485); images above it get QB_EXIT_DATA. */
extern uint64_t qb_max_image_pixels;

/* Decode a PNG (1–16-bit, gray, gray+alpha, RGB, RGBA, palette, interlaced) or JPEG (baseline,
 * progressive, gray, colour, CMYK/YCCK) file to RGB as Pillow 9.4's .convert('RGB') does: alpha
 * and tRNS dropped without compositing; 16-bit RGB/RGBA/GA keep the high byte; 16-bit grey is
 * clipped to 255 (Pillow opens it as mode 'I' and I→RGB clips); palette indices past a short
 * PLTE are grey (i,i,i). Format from magic bytes, not the extension. Truncated files are
 * errors (a PNG may lack IEND, as in Pillow); damaged JPEG entropy data decodes as libjpeg
 * leaves it, as in Pillow. Errors: QB_EXIT_DATA naming the path/label; QB_EXIT_FAIL out of memory.
 * On error img->rgb is NULL. */
int qb_image_load(qb_image *img, const char *path);
int qb_image_load_memory(qb_image *img, const void *buf, size_t size, const char *label);
void qb_image_free(qb_image *img);

/* Write RGB8 as PNG (lossless), atomically (tmp + rename). QB_EXIT_IO on failure. */
int qb_image_save_png(const qb_image *img, const char *path);

typedef enum { QB_INTERP_NEAREST, QB_INTERP_BILINEAR, QB_INTERP_BICUBIC, QB_INTERP_BOX } qb_interp;
int qb_interp_parse(const char *s, qb_interp *out);     /* "bicubic" etc.; 0 ok, QB_EXIT_USAGE */
const char *qb_interp_name(qb_interp i);

/* PIL Image.resize((out_w, out_h), filter) on RGB8, bit-exact with Pillow 9.4
 * (horizontal pass first into a uint8 intermediate, then vertical). */
int qb_resize(qb_image *dst, const qb_image *src, int out_w, int out_h, qb_interp filter); /* dst != src */

/* timm eval transform up to ToTensor: shorter side to floor(size/crop_pct) (long side
 * truncated), centre crop size×size (half-to-even offsets, zero pad if smaller), then
 * v = u/255.0f. out is (3, size, size) CHW float in [0,1]. Normalisation is the model's job. */
int qb_preprocess_eval(float *out, const qb_image *img, int size, double crop_pct, qb_interp filter);

/* The pieces of qb_preprocess_eval, for callers that need the uint8 crop (corruptions, saving)
 * or the sizes (metadata). dst images are allocated here; free with qb_image_free. */
int qb_eval_resize_size(int w, int h, int size, double crop_pct, int *new_w, int *new_h);
int qb_center_crop(qb_image *dst, const qb_image *src, int size);   /* zero pad if smaller */
int qb_preprocess_eval_u8(qb_image *dst, const qb_image *src, int size, double crop_pct, qb_interp filter);
void qb_image_to_chw(float *out, const qb_image *img);              /* ToTensor: u/255.0f, CHW */

/* One axis of Pillow's resampling table (not NEAREST): output i uses source pixels
 * bounds[2i] .. bounds[2i]+bounds[2i+1]−1 with 22-bit fixed-point weights coeffs[i·ksize + t].
 * Returns ksize (> 0), or 0 after qb_error. Caller frees both arrays. Exposed for tests. */
int qb_resize_coeffs(int in_size, int out_size, qb_interp filter, int **bounds, int32_t **coeffs);
/* The two passes of qb_resize on RGB8 rows with a qb_resize_coeffs table, into caller buffers
 * (for callers that resize often, e.g. pixelate). Horizontal: `rows` rows of src (stride
 * in_w·3) into dst (stride out_w·3). Vertical: out_h rows of dst (stride w3 bytes), each a
 * weighted sum of whole src rows; acc holds w3 ints. */
void qb_resample_h(uint8_t *dst, int out_w, const uint8_t *src, int in_w, int rows, const int *bounds,
                   const int32_t *kk, int ksize);
void qb_resample_v(uint8_t *dst, int out_h, const uint8_t *src, size_t w3, const int *bounds, const int32_t *kk,
                   int ksize, int32_t *acc);

#endif
