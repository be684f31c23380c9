/* model.h — build a vit_model from a timm-layout safetensors checkpoint: infer the
 * architecture from tensor shapes, read questbench.* metadata (engine.md §1.7, §3.7), apply
 * command-line overrides, validate every tensor by name and shape, convert to fp32. */
#ifndef QB_MODEL_H
#define QB_MODEL_H
#include "vit.h"
#include "image.h"

/* Command-line overrides; zero/NULL fields mean "not given". */
typedef struct {
    const char *attention;     /* sdpa|qknorm|quest */
    int heads;
    int has_mean, has_std;
    float mean[3], std[3];
    double crop_pct;
    const char *interpolation; /* bicubic|bilinear|nearest|box */
    double quest_eps;
} qb_model_overrides;

typedef struct {
    vit_model vit;
    char path[1024];
    double crop_pct;
    qb_interp interp;
    char **class_names;        /* from questbench.class_names, or NULL */
    int n_class_names;
    char notes[2048];          /* defaults and overrides applied, one per line (for the log) */
} qb_model;

/* Parse "a,b,c" into 3 floats (QB_EXIT_USAGE naming `what` on failure). */
int qb_parse_float3(const char *s, float out[3], const char *what);

/* Map a timm key to its slice of a parameter-shaped arena (params or grads). */
int qb_param_lookup(const vit_config *c, const vit_params *arena, const char *key, float **ptr, size_t *n);
/* Upper bound of the number of timm keys, and the i-th key (NULL past the end). */
int qb_param_count(const vit_config *c);
const char *qb_param_name(const vit_config *c, int i, char *buf, size_t len);

int qb_model_load(qb_model *m, const char *path, const qb_model_overrides *ov);
void qb_model_free(qb_model *m);

#endif
