/* test_train.c — lib/train*.c: AdamW against PyTorch 1.13 (tests/ref/make_train_fixtures.py),
 * the warmup + cosine schedule against its formula (per iteration and timm's per-epoch quirk),
 * timm initialisation statistics, augmentation and the spurious patch, layer statistics, and
 * config errors with FILE:LINE:COLUMN. */
#include "qbtest.h"
#include "safetensors.h"
#include "train.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

static const float *tensor(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    *n = t->numel;
    return (const float *)t->data; /* F32, 8-byte aligned by the writer */
}

START_TEST(test_adamw_matches_pytorch) {
    st_file f;
    ck_assert_int_eq(st_open(&f, qbt_fixture("train/adamw.safetensors")), 0);
    const char *names[3] = {"w", "q", "b"};
    const double wd[3] = {0.05, 0.05, 0.0};
    float p[3][16], m[3][16] = {{0}}, v[3][16] = {{0}};
    size_t n[3];
    char key[64];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "init.%s", names[i]);
        const float *src = tensor(&f, key, &n[i]);
        ck_assert(n[i] <= 16);
        memcpy(p[i], src, n[i] * sizeof(float));
    }
    double worst = 0;
    for (int t = 1; t <= 5; t++)
        for (int i = 0; i < 3; i++) {
            size_t k;
            snprintf(key, sizeof key, "grad.%d.%s", t, names[i]);
            const float *g = tensor(&f, key, &k);
            adamw_update(p[i], g, m[i], v[i], n[i], 1e-2, 0.9, 0.999, 1e-8, wd[i], t);
            snprintf(key, sizeof key, "param.%d.%s", t, names[i]);
            const float *want = tensor(&f, key, &k);
            for (size_t j = 0; j < n[i]; j++) {
                double rel = fabs((double)p[i][j] - want[j]) / fmax(fabs(want[j]), 1e-6);
                worst = fmax(worst, rel);
                ck_assert_msg(rel <= 1e-6, "step %d %s[%zu]: %.9g vs torch %.9g (rel %.3g)", t, names[i], j, p[i][j],
                              want[j], rel);
            }
        }
    for (int i = 0; i < 3; i++) {
        size_t k;
        snprintf(key, sizeof key, "exp_avg_sq.5.%s", names[i]);
        const float *want = tensor(&f, key, &k);
        for (size_t j = 0; j < n[i]; j++) ck_assert_float_eq_tol(v[i][j], want[j], 1e-6f * fabsf(want[j]) + 1e-30f);
    }
    st_close(&f);
}
END_TEST

static qb_train_config sched_cfg(int per_epoch) {
    qb_train_config c;
    memset(&c, 0, sizeof c);
    c.lr = 1e-3, c.min_lr = 1e-5, c.warmup_lr = 1e-6, c.warmup_epochs = 2, c.epochs = 10;
    c.per_epoch_schedule = per_epoch;
    return c;
}

START_TEST(test_schedule) {
    const double lr = 1e-3, mn = 1e-5, w0 = 1e-6;
    qb_train_config c = sched_cfg(0);
    /* per iteration, 100 steps an epoch: warmup over 200 steps, cosine over 1000 */
    ck_assert_double_eq_tol(qb_train_lr(&c, 0, 100), w0, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 50, 100), w0 + 50 * (lr - w0) / 200, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 199, 100), w0 + 199 * (lr - w0) / 200, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 200, 100), mn + 0.5 * (lr - mn) * (1 + cos(M_PI * 0.2)), 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 600, 100), mn + 0.5 * (lr - mn) * (1 + cos(M_PI * 0.6)), 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 999, 100), mn + 0.5 * (lr - mn) * (1 + cos(M_PI * 0.999)), 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 1000, 100), mn, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 5000, 100), mn, 1e-15);
    /* per epoch (timm t_in_epochs): epoch 0 at warmup_lr, epoch e ≥ 1 at η(e − 1) */
    c = sched_cfg(1);
    ck_assert_double_eq_tol(qb_train_lr(&c, 0, 100), w0, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 99, 100), w0, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 100, 100), w0, 1e-15); /* epochs 0 and 1 both at 1e-6 */
    ck_assert_double_eq_tol(qb_train_lr(&c, 250, 100), w0 + (lr - w0) / 2, 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 399, 100), mn + 0.5 * (lr - mn) * (1 + cos(M_PI * 0.2)), 1e-15);
    ck_assert_double_eq_tol(qb_train_lr(&c, 500, 100), mn + 0.5 * (lr - mn) * (1 + cos(M_PI * 0.4)), 1e-15);
    /* no warmup: the constructor's lr is the base lr */
    c.warmup_epochs = 0;
    ck_assert_double_eq_tol(qb_train_lr(&c, 0, 100), lr, 1e-15);
    ck_assert_double_eq_tol(qb_cosine_lr(10, lr, mn, w0, 0, 10), mn, 1e-15);
}
END_TEST

static void small_model(vit_model *m, vit_attn attn, int D, int L, int H) {
    qb_train_config c;
    memset(&c, 0, sizeof c);
    c.img_size = 16, c.patch = 4, c.dim = D, c.depth = L, c.heads = H, c.classes = 10, c.mlp_ratio = 2;
    c.attn = attn, c.quest_eps = 1e-6;
    for (int i = 0; i < 3; i++) c.mean[i] = 0.5f, c.std[i] = 0.25f;
    vit_config vc;
    ck_assert_int_eq(qb_train_vit_config(&c, &vc), 0);
    ck_assert_int_eq(vit_init(m, &vc), 0);
}

static void moments(const float *x, size_t n, double *mean, double *sd, double *maxabs) {
    double s = 0, ss = 0, mx = 0;
    for (size_t i = 0; i < n; i++) s += x[i], ss += (double)x[i] * x[i], mx = fmax(mx, fabs(x[i]));
    *mean = s / n, *sd = sqrt(ss / n - (s / n) * (s / n)), *maxabs = mx;
}

START_TEST(test_init_statistics) {
    vit_model m;
    small_model(&m, VIT_ATTN_QKNORM, 192, 2, 3);
    qb_vit_init_timm(&m, 1);
    double mean, sd, mx;
    moments(m.params.qkvw, m.param_sizes[6], &mean, &sd, &mx);
    ck_assert_double_eq_tol(sd, 0.02, 0.0004);
    ck_assert_double_eq_tol(mean, 0.0, 0.0002);
    ck_assert(mx < 0.2);
    moments(m.params.fc2w, m.param_sizes[18], &mean, &sd, &mx);
    ck_assert_double_eq_tol(sd, 0.02, 0.0006);
    moments(m.params.pos, m.param_sizes[3], &mean, &sd, &mx);
    ck_assert_double_eq_tol(sd, 0.02, 0.002);
    moments(m.params.cls, m.param_sizes[2], &mean, &sd, &mx);
    ck_assert(mx < 1e-5 && sd > 1e-7); /* normal(std 1e-6), timm HEAD */
    double bound = 1.0 / sqrt(3.0 * 4 * 4);
    moments(m.params.patchw, m.param_sizes[0], &mean, &sd, &mx);
    ck_assert(mx <= bound);
    ck_assert_double_eq_tol(sd, bound / sqrt(3.0), 0.05 * bound);
    moments(m.params.patchb, m.param_sizes[1], &mean, &sd, &mx);
    ck_assert(mx <= bound && mx > 0.5 * bound);
    for (size_t i = 0; i < m.param_sizes[4]; i++) ck_assert(m.params.ln1w[i] == 1.0f && m.params.ln1b[i] == 0.0f);
    for (size_t i = 0; i < m.param_sizes[8]; i++) ck_assert(m.params.qnw[i] == 1.0f && m.params.knb[i] == 0.0f);
    for (size_t i = 0; i < m.param_sizes[7]; i++) ck_assert(m.params.qkvb[i] == 0.0f);
    for (size_t i = 0; i < m.param_sizes[23]; i++) ck_assert(m.params.headb[i] == 0.0f);
    for (int i = 0; i < 192; i++) ck_assert(m.params.lnfw[i] == 1.0f);
    /* deterministic in the seed; another seed differs */
    float keep = m.params.qkvw[123];
    qb_vit_init_timm(&m, 1);
    ck_assert(m.params.qkvw[123] == keep);
    qb_vit_init_timm(&m, 2);
    ck_assert(m.params.qkvw[123] != keep);
    vit_free(&m);
    /* truncation at absolute ±2: at std 1 the draws stay inside and the std is 0.8796 */
    qb_rng r = qb_rng_stream(3, 0, "test");
    double s = 0, ss = 0;
    for (int i = 0; i < 200000; i++) {
        double x = qb_trunc_normal(&r, 1.0, -2.0, 2.0);
        ck_assert(x >= -2.0 && x <= 2.0);
        s += x, ss += x * x;
    }
    ck_assert_double_eq_tol(sqrt(ss / 200000 - (s / 200000) * (s / 200000)), 0.8796, 0.005);
    /* the no-decay groups: only the Linear and conv weights decay */
    int decays[VIT_PARAM_SLOTS] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0};
    for (int i = 0; i < VIT_PARAM_SLOTS; i++) ck_assert_int_eq(qb_param_slot_decays(i), decays[i]);
}
END_TEST

static qb_train_set toy_set(int n, int S) {
    qb_train_set s;
    memset(&s, 0, sizeof s);
    s.n = n, s.size = S, s.classes = 10;
    s.pix = malloc((size_t)n * 3 * S * S);
    s.labels = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) {
        s.labels[i] = i % 10;
        for (int k = 0; k < 3 * S * S; k++) s.pix[(size_t)i * 3 * S * S + k] = (uint8_t)(k * 7 + i * 13);
    }
    return s;
}

START_TEST(test_augment_and_spurious) {
    enum { S = 8, B = 6 };
    qb_train_set s = toy_set(20, S);
    qb_train_config c;
    memset(&c, 0, sizeof c);
    c.seed = 5;
    int idx[B] = {3, 0, 19, 7, 7, 12}, y[B], perm[20];
    float x[B * 3 * S * S], x2[B * 3 * S * S];
    /* no padding, no flip: the images themselves */
    qb_train_batch(x, y, &s, idx, B, &c, 0);
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(y[b], s.labels[idx[b]]);
        for (int k = 0; k < 3 * S * S; k++)
            ck_assert(x[b * 3 * S * S + k] == s.pix[(size_t)idx[b] * 3 * S * S + k] / 255.0f);
    }
    /* crop + flip: every output pixel is a source pixel or padding zero; same at any thread count */
    c.crop_padding = 2, c.hflip = 1;
    omp_set_num_threads(1);
    qb_train_batch(x, y, &s, idx, B, &c, 3);
    omp_set_num_threads(2);
    qb_train_batch(x2, y, &s, idx, B, &c, 3);
    ck_assert(!memcmp(x, x2, sizeof x));
    qb_train_batch(x2, y, &s, idx, B, &c, 4); /* another epoch, another crop */
    ck_assert(memcmp(x, x2, sizeof x));
    /* shuffling is a permutation, deterministic per (seed, epoch) */
    qb_train_shuffle(perm, 20, 5, 0);
    int seen[20] = {0};
    for (int i = 0; i < 20; i++) seen[perm[i]]++;
    for (int i = 0; i < 20; i++) ck_assert_int_eq(seen[i], 1);
    /* spurious patch: strength 1 puts the class colour in the top-left size×size square */
    c.crop_padding = 0, c.hflip = 0, c.spurious_strength = 1.0, c.spurious_size = 3;
    qb_train_batch(x, y, &s, idx, B, &c, 0);
    for (int b = 0; b < B; b++) {
        float rgb[3];
        qb_spurious_colour(y[b], rgb);
        for (int ch = 0; ch < 3; ch++) {
            const float *p = x + (size_t)b * 3 * S * S + (size_t)ch * S * S;
            ck_assert(p[0] == rgb[ch] && p[2 * S + 2] == rgb[ch]);
            ck_assert(p[3 * S + 3] == s.pix[(size_t)idx[b] * 3 * S * S + ch * S * S + 3 * S + 3] / 255.0f);
        }
    }
    float c0[3], c1[3];
    qb_spurious_colour(0, c0);
    qb_spurious_colour(1, c1);
    ck_assert(memcmp(c0, c1, sizeof c0));
    free(s.pix);
    free(s.labels);
}
END_TEST

START_TEST(test_layer_stats) {
    const vit_attn kinds[3] = {VIT_ATTN_SDPA, VIT_ATTN_QKNORM, VIT_ATTN_QUEST};
    for (int a = 0; a < 3; a++) {
        vit_model m;
        small_model(&m, kinds[a], 32, 2, 2);
        qb_vit_init_timm(&m, 4);
        for (size_t i = 0; i < m.param_sizes[6]; i++) m.params.qkvw[i] *= 20.0f; /* peaked attention */
        enum { B = 3, S = 16 };
        float x[B * 3 * S * S];
        for (int i = 0; i < B * 3 * S * S; i++) x[i] = (float)((i * 37) % 101) / 100.0f;
        ck_assert_int_eq(vit_forward(&m, x, B, VIT_MODE_FULL, NULL), 0);
        double st[2 * QB_LAYER_STATS];
        ck_assert_int_eq(qb_layer_stats(&m, B, st), 0);
        const int N = m.cfg.n_tokens;
        for (int l = 0; l < 2; l++) {
            const double *r = st + l * QB_LAYER_STATS;
            ck_assert(r[0] > 0 && r[0] <= r[1] && r[2] > 0 && r[2] <= r[3]);
            ck_assert(r[5] >= 0 && r[5] <= log((double)N) + 1e-9);
            if (kinds[a] == VIT_ATTN_SDPA) ck_assert(r[4] <= m.cfg.attn_scale * r[1] * r[3] * (1 + 1e-5));
            if (kinds[a] == VIT_ATTN_QUEST) ck_assert(r[4] <= r[1] * (1 + 1e-5));
            if (kinds[a] == VIT_ATTN_QKNORM) ck_assert(r[4] <= m.cfg.attn_scale * m.cfg.head_dim * (1 + 1e-4));
        }
        /* independently: logits from q, k (double), whose softmax must be the model's kept
         * probabilities, and whose max must be the logged max logit */
        const int D = m.cfg.dim, H = m.cfg.heads, hd = m.cfg.head_dim;
        const size_t qs = offsetof(vit_acts, qkv) / sizeof(float *), as = offsetof(vit_acts, att) / sizeof(float *);
        for (int l = 0; l < 2; l++) {
            const float *qkv = m.acts.qkv + l * m.act_layer_stride[qs], *att = m.acts.att + l * m.act_layer_stride[as];
            double zmax = -1e300, ent = 0;
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < N; i++) {
                        double z[64], qv[64], kv[64], mx = -1e300, sum = 0;
                        ck_assert(N <= 64 && hd <= 64);
                        for (int j = 0; j < N; j++) {
                            const float *q = qkv + ((size_t)b * N + i) * 3 * D + h * hd;
                            const float *k = qkv + ((size_t)b * N + j) * 3 * D + D + h * hd;
                            double nk = 0, mq = 0, mk = 0, vq = 0, vk = 0;
                            for (int t = 0; t < hd; t++) nk += (double)k[t] * k[t], mq += q[t], mk += k[t];
                            mq /= hd, mk /= hd;
                            for (int t = 0; t < hd; t++) vq += (q[t] - mq) * (q[t] - mq), vk += (k[t] - mk) * (k[t] - mk);
                            vq /= hd, vk /= hd;
                            for (int t = 0; t < hd; t++) {
                                qv[t] = q[t], kv[t] = k[t];
                                if (kinds[a] == VIT_ATTN_QUEST) kv[t] = k[t] / fmax(sqrt(nk), 1e-6);
                                if (kinds[a] == VIT_ATTN_QKNORM) { /* weights 1, biases 0 at init */
                                    qv[t] = (q[t] - mq) / sqrt(vq + 1e-6);
                                    kv[t] = (k[t] - mk) / sqrt(vk + 1e-6);
                                }
                            }
                            double d = 0;
                            for (int t = 0; t < hd; t++) d += qv[t] * kv[t];
                            z[j] = (kinds[a] == VIT_ATTN_QUEST ? 1.0 : 1.0 / sqrt((double)hd)) * d;
                            mx = fmax(mx, z[j]);
                        }
                        zmax = fmax(zmax, mx);
                        for (int j = 0; j < N; j++) sum += exp(z[j] - mx);
                        const float *P = att + (((size_t)b * H + h) * N + i) * N;
                        for (int j = 0; j < N; j++) {
                            ck_assert_double_eq_tol(P[j], exp(z[j] - mx) / sum, 2e-4);
                            if (P[j] > 0) ent -= P[j] * log(P[j]);
                        }
                    }
            const double *r = st + l * QB_LAYER_STATS;
            ck_assert_double_eq_tol(r[4], zmax, 1e-4 * fmax(1, fabs(zmax)));
            ck_assert_double_eq_tol(r[5], ent / ((double)B * H * N), 1e-6);
            ck_assert(zmax > 2.0); /* the test is not vacuous: peaked attention */
        }
        vit_free(&m);
    }
}
END_TEST

START_TEST(test_grad_norm_and_clip) {
    vit_model m;
    small_model(&m, VIT_ATTN_SDPA, 16, 1, 2);
    ck_assert_int_eq(vit_zero_grad(&m), 0);
    double want = 0;
    for (size_t i = 0; i < m.num_params; i++) {
        m.grads_mem[i] = (float)((int)(i % 7) - 3) * 0.01f;
        want += (double)m.grads_mem[i] * m.grads_mem[i];
    }
    want = sqrt(want);
    double n = qb_grad_norm(&m);
    ck_assert_double_eq_tol(n, want, 1e-9 * want);
    qb_clip_grads(&m, n, 10 * n); /* below the limit: untouched */
    ck_assert_double_eq_tol(qb_grad_norm(&m), want, 1e-9 * want);
    qb_clip_grads(&m, n, 0.5 * n); /* torch: × max_norm / (norm + 1e-6) */
    ck_assert_double_eq_tol(qb_grad_norm(&m), 0.5 * n * n / (n + 1e-6), 1e-6 * n);
    vit_free(&m);
}
END_TEST

static const char *write_cfg(const char *dir, const char *name, const char *text) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_int_eq(qbt_write_file(p, text, strlen(text)), 0);
    return p;
}

START_TEST(test_config_errors) {
    const char *d = qbt_tmpdir();
    qb_train_config c;
    const char *ok = "model:\n  dim: 64\n  heads: 4\n  depth: 2\n  attention: quest\ndata: /x\noutput: /y\n"
                     "spurious: {strength: 0.5, size: 4}\nbetas: [0.9, 0.98]\nlr_schedule: epoch\n";
    ck_assert_int_eq(qb_train_config_load(&c, write_cfg(d, "ok.yaml", ok)), 0);
    ck_assert_int_eq(c.dim, 64);
    ck_assert_int_eq(c.attn, VIT_ATTN_QUEST);
    ck_assert_double_eq(c.spurious_strength, 0.5);
    ck_assert_double_eq(c.beta2, 0.98);
    ck_assert_int_eq(c.per_epoch_schedule, 1);
    struct { const char *text, *want; } cases[] = {
        {"data: /x\noutput: /y\nlearning_rate: 1\n", ":3:1: unknown key 'learning_rate'"},
        {"data: /x\noutput: /y\nmodel:\n  dim: 64\n  heads: 5\n", ":5:10: model.heads: must divide model.dim"},
        {"data: /x\noutput: /y\nmodel:\n  depht: 2\n", ":4:3: unknown key 'depht' in model"},
        {"data: /x\noutput: /y\nlr: -1\n", ":3:5: lr: expected a number in (0, 10], got '-1'"},
        {"data: /x\noutput: /y\nepochs: 0\n", ":3:9: epochs: expected an integer"},
        {"data: /x\noutput: /y\nmodel: {attention: flash}\n", ":3:20: attention: expected sdpa, qknorm or quest"},
        {"data: /x\noutput: /y\nlabel_smoothing: 1\n", "label_smoothing: expected a number in [0, 0.999]"},
        {"data: /x\noutput: /y\nspurious: {strength: 2}\n", ":3:22: spurious.strength"},
        {"data: /x\noutput: /y\nspurious: {strength: 1, size: 40}\n", ":3:31: spurious.size: larger than the image"},
        {"data: /x\noutput: /y\nmin_lr: 0.1\nlr: 0.01\n", ":3:9: min_lr: must not exceed lr"},
        {"data: /x\noutput: /y\nformat: lmdb\n", ":3:9: format: expected folder or cifar-binary"},
        {"data: /x\noutput: /y\nformat: cifar-binary\nmodel: {img_size: 64}\n", "cifar-binary holds 32x32"},
        {"output: /y\n", "no 'data' folder"},
        {"data: /x\noutput: /y\nmodel: [1, 2\n", "YAML error"},
        {"data: $QB_NO_SUCH_VARIABLE/x\noutput: /y\n", ":1:7: environment variable 'QB_NO_SUCH_VARIABLE' is not set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = write_cfg(d, "bad.yaml", cases[i].text);
        ck_assert_int_eq(qb_train_config_load(&c, p), QB_EXIT_USAGE);
        ck_assert_msg(strstr(qb_last_error(), cases[i].want) && strstr(qb_last_error(), "bad.yaml"),
                      "case %zu: got '%s', want '%s'", i, qb_last_error(), cases[i].want);
    }
}
END_TEST

Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_adamw_matches_pytorch);
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_init_statistics);
    tcase_add_test(tc, test_augment_and_spurious);
    tcase_add_test(tc, test_layer_stats);
    tcase_add_test(tc, test_grad_norm_and_clip);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    return s;
}
