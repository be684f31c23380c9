/* train.h — training a ViT with questbench's own engine (engine.md §5): the training
 * config (YAML), timm initialisation, AdamW exactly as torch.optim.AdamW with timm's no-decay
 * groups, the warmup + cosine schedule, gradient norm and clipping, per-layer attention
 * statistics, the in-memory uint8 data sets (CIFAR-10 folder or binary batches) with crop +
 * flip augmentation and the optional spurious patch, and checkpoints (safetensors model +
 * sibling optimizer state).
 *
 * Every random draw comes from lib/rng.h streams keyed by (seed, what, purpose), so a run is
 * the same at any thread count and a resumed run continues bit-identically. */
#ifndef QB_TRAIN_H
#define QB_TRAIN_H
#include "vit.h"
#include "rng.h"

/* ----------------------------------------------------------------------------------------
 * config (train_config.c) */

typedef enum { QB_FORMAT_FOLDER = 0, QB_FORMAT_CIFAR_BINARY = 1 } qb_data_format;

typedef struct {
    char path[1024];           /* the config file (for messages and provenance) */
    /* model */
    int img_size, patch, dim, depth, heads, classes;
    double mlp_ratio;
    vit_attn attn;
    double quest_eps;
    float mean[3], std[3];
    /* data */
    char data[1024];           /* folder with train/ and test/ (folder) or the .bin batches */
    qb_data_format format;
    int train_limit, test_limit; /* > 0: use only the first N images (tests, smoke runs) */
    /* optimisation */
    uint64_t seed;
    int epochs, batch;
    double lr, min_lr, warmup_lr, warmup_epochs;
    int per_epoch_schedule;    /* 1: timm's per-epoch stepping (with its quirk), 0: per iteration */
    double weight_decay, beta1, beta2, adam_eps;
    double label_smoothing, clip_grad; /* clip_grad 0: none */
    /* augmentation */
    int crop_padding, hflip;
    double spurious_strength;  /* probability that a training image carries its class's patch; 0: off */
    int spurious_size;         /* patch side in pixels */
    /* logging and output */
    int log_every;             /* per-layer statistics every N steps (0: never) */
    int eval_batch;
    int threads;
    char output[1024];         /* folder: model.safetensors, model.optim.safetensors, CSV logs */
    uint64_t hash;             /* FNV-1a of the config file's bytes (provenance) */
} qb_train_config;

/* Parse a training config. Errors: QB_EXIT_USAGE with "FILE:LINE:COLUMN: problem" for unknown
 * keys, bad values and impossible combinations (heads not dividing dim, ...). */
int qb_train_config_load(qb_train_config *c, const char *path);
/* The vit_config the training config describes (after vit_config_finish). */
int qb_train_vit_config(const qb_train_config *c, vit_config *out);

/* ----------------------------------------------------------------------------------------
 * schedule, initialisation, optimizer, statistics (train.c) */

/* timm CosineLRScheduler η(t) (engine.md §5.4): linear warmup from warmup_lr over `warmup`
 * units, then cosine from lr to min_lr over `total` units (warmup_prefix = False), min_lr after. */
double qb_cosine_lr(double t, double lr, double min_lr, double warmup_lr, double warmup, double total);
/* Learning rate of optimizer step `step` (0-based) with `steps_per_epoch` steps an epoch:
 * per iteration: η(step) in steps; per epoch (timm's t_in_epochs quirk): epoch 0 runs at
 * warmup_lr, epoch e ≥ 1 at η(e − 1) in epochs. */
double qb_train_lr(const qb_train_config *c, long step, long steps_per_epoch);

/* A normal draw with rejection outside [a, b] (timm trunc_normal_(std, a, b), absolute bounds). */
double qb_trunc_normal(qb_rng *rng, double std, double a, double b);
/* timm (HEAD, mode '') initialisation of every parameter of m, from `seed` (engine.md §5.5):
 * Linear weights and pos_embed trunc_normal(0.02), biases 0, cls_token normal(1e-6), norms 1/0,
 * patch conv weight and bias U(±1/sqrt(3·P·P)). Identical for every attention kind. */
void qb_vit_init_timm(vit_model *m, uint64_t seed);

/* 1 for the parameter slots that get weight decay (the Linear and conv weights), 0 for biases,
 * norms, pos_embed and cls_token (timm param_groups_weight_decay). */
int qb_param_slot_decays(int slot);

/* One AdamW step on n values, exactly as torch.optim.AdamW (single-tensor path, 1.13) with
 * step count t ≥ 1: θ ← θ(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * θ ← θ − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). */
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, long t);

typedef struct {
    float *m, *v;              /* (num_params) each */
    long step;                 /* optimizer steps taken */
} qb_adamw;
int qb_adamw_init(qb_adamw *o, size_t num_params);
void qb_adamw_free(qb_adamw *o);
/* AdamW over every slot of the model with the per-slot decay table; takes step t = ++o->step. */
void qb_adamw_step(qb_adamw *o, vit_model *m, double lr, const qb_train_config *c);

/* Global L2 norm of the gradients (double accumulation, fixed order). */
double qb_grad_norm(const vit_model *m);
/* torch.nn.utils.clip_grad_norm_: scale by max_norm/(norm + 1e-6) when that is < 1. */
void qb_clip_grads(vit_model *m, double norm, double max_norm);

/* Per-layer attention statistics after a VIT_MODE_FULL forward (from m->acts.qkv and
 * m->acts.att), QB_LAYER_STATS values per layer into out (L, QB_LAYER_STATS):
 * mean and max query norm, mean and max key norm (per head vectors, raw q and k as the qkv
 * projection gives them), the max attention logit (recomputed as the model does: scale·q·k for
 * sdpa, scale·LN(q)·LN(k) for qknorm, q·k/max(|k|, eps) for quest), and the mean attention
 * entropy (nats, over images, heads and query rows). Only the first `B_stats` images (≤ B). */
#define QB_LAYER_STATS 6
int qb_layer_stats(vit_model *m, int B_stats, double *out);

/* ----------------------------------------------------------------------------------------
 * data (train_data.c) */

typedef struct {
    int n, size, classes;      /* images, side, number of classes */
    uint8_t *pix;              /* (n, 3, size, size) CHW uint8 */
    int *labels;               /* (n) */
    char **class_names;        /* classes names */
} qb_train_set;

/* Load the train and test splits into memory as uint8 (decoded once). folder: DIR/train and
 * DIR/test ImageFolder trees whose images are size×size; both must hold exactly `classes`
 * classes with the same names. cifar-binary: DIR (or DIR/cifar-10-batches-bin) holding
 * data_batch_1..5.bin and test_batch.bin (1 label byte + 3072 CHW bytes per record).
 * limits > 0 keep N images of a split (folder: evenly spaced over the class-sorted listing, image
 * i·n/N; binary: the first N records, which mix the classes). Errors: QB_EXIT_DATA naming the problem. */
int qb_train_data_load(qb_train_set *train, qb_train_set *test, const char *dir, qb_data_format fmt, int size,
                       int classes, int train_limit, int test_limit);
void qb_train_set_free(qb_train_set *s);

/* A permutation of [0, n) for `epoch` (Fisher–Yates on the (seed, epoch, "shuffle") stream). */
void qb_train_shuffle(int *perm, int n, uint64_t seed, int epoch);
/* Build a training batch: image idx[b] of s, random crop with zero padding `pad` and a
 * horizontal flip (if hflip), then the spurious patch (if strength > 0), to float CHW in [0,1].
 * x (B, 3, size, size), y (B). Randomness keyed by (seed, epoch, image index). */
void qb_train_batch(float *x, int *y, const qb_train_set *s, const int *idx, int B, const qb_train_config *c,
                    int epoch);
/* The colour of class k's spurious patch (RGB in [0,1]; a fixed palette for k < 10). */
void qb_spurious_colour(int k, float rgb[3]);
/* The spurious patch of class k: a size×size square of colour qb_spurious_colour(k) in the
 * top-left corner of a (3, S, S) float image. */
void qb_spurious_apply(float *img, int S, int k, int size);
/* Test images [start, start+B) as float CHW in [0,1]. */
void qb_eval_batch(float *x, const qb_train_set *s, int start, int B);

/* ----------------------------------------------------------------------------------------
 * checkpoints (train_ckpt.c) */

typedef struct {
    int epoch;                 /* epochs completed */
    long step;                 /* optimizer steps taken */
    double test_top1;          /* after the last completed epoch (-1: not measured) */
    double lr;                 /* the last learning rate used */
    int config_changed;        /* qb_train_load: the config file differs from the checkpoint's */
} qb_train_state;

/* Write path (model, timm keys, questbench.* metadata incl. questbench.train.*) and the
 * optimizer state to `optim_path` (m, v, step, epoch, schedule position), both atomically. */
int qb_train_save(const char *path, const char *optim_path, const vit_model *m, const qb_adamw *o,
                  const qb_train_config *c, const qb_train_state *st, char **class_names);
/* Resume: load both files into m (allocated by the caller for the config's architecture) and o.
 * A checkpoint of another architecture: QB_EXIT_MODEL naming both. */
int qb_train_load(const char *path, const char *optim_path, vit_model *m, qb_adamw *o, const qb_train_config *c,
                  qb_train_state *st);

#endif
