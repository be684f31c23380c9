/* test_corruptions.c — corruptions/: fidelity against the hendrycks reference outputs
 * ($QUESTBENCH_DATA/corruption-ref, corruptions.md §7), distribution checks of the counter-RNG
 * path, determinism, and input validation. Reference tests skip, with a printed line, when the
 * data is absent. */
#include "qbtest.h"
#include "../../corruptions/corruptions.h"
#include "../../corruptions/prims.h"
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static const char *ref_names[3][4] = {{"n01440764", "n02007558", "n02112137", "n02526121"},
                                      {"n01440764", "n02007558", "n02112137", "n02526121"},
                                      {"airplane-0007", "automobile-0007", "bird-0007", "cat-0007"}};

/* $QUESTBENCH_DATA; without it the reference checks are skipped (with a line saying so). */
static const char *data_dir(void) {
    const char *d = getenv("QUESTBENCH_DATA");
    return d && *d ? d : "/nonexistent-QUESTBENCH_DATA-unset";
}

static int have_ref(const char *what) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/corruption-ref/cifar/clean", data_dir());
    if (stat(p, &st) == 0) return 1;
    printf("corruptions: SKIPPED %s: reference data not found at %s/corruption-ref (set QUESTBENCH_DATA)\n", what,
           data_dir());
    return 0;
}

static void load_ref(qb_image *img, qb_preset p, const char *corr, int sev, int i) {
    char path[1024];
    if (sev) snprintf(path, sizeof path, "%s/corruption-ref/%s/%s/%d/%s.png", data_dir(), qb_preset_name(p), corr, sev, ref_names[p][i]);
    else snprintf(path, sizeof path, "%s/corruption-ref/%s/clean/%s.png", data_dir(), qb_preset_name(p), ref_names[p][i]);
    int rc = qb_image_load(img, path);
    ck_assert_msg(rc == 0, "%s", qb_last_error());
}

/* Compare every corruption except impulse_noise (unseeded in the reference) with the stored files,
 * drawing from NumPy's stream seeded with 1234 as the reference did (§7.2). Deterministic ones:
 * |Δ| ≤ 1 everywhere and ≤ 2 % of values at 1; stochastic ones: ≥ 99 % of values within ±1. */
static void check_preset(qb_preset p, int n_images) {
    if (!have_ref("reference comparison")) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/frost", data_dir());
    qb_frost fr;
    ck_assert_msg(qb_frost_load(&fr, dir, p) == 0, "%s", qb_last_error());
    qb_corrupt_ctx ctx = {p, qb_preset_size(p), &fr};
    int S = ctx.S;
    size_t n = (size_t)S * S * 3;
    uint8_t *out = malloc(n);
    for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
        const qb_corruption *co = &qb_corruptions[c];
        if (!strcmp(co->name, "impulse_noise")) continue;
        for (int sev = 1; sev <= 5; sev++) {
            long within = 0, at1 = 0, total = 0;
            int maxd = 0;
            for (int i = 0; i < n_images; i++) {
                qb_image clean, ref;
                load_ref(&clean, p, NULL, 0, i);
                load_ref(&ref, p, co->name, sev, i);
                int rc = qb_corrupt(out, clean.rgb, c, sev, QB_CRNG_NUMPY, 1234, 0, &ctx);
                ck_assert_msg(rc == 0, "%s: %s", co->name, qb_last_error());
                for (size_t k = 0; k < n; k++) {
                    int d = abs((int)out[k] - (int)ref.rgb[k]);
                    within += d <= 1, at1 += d == 1, total++;
                    if (d > maxd) maxd = d;
                }
                qb_image_free(&clean), qb_image_free(&ref);
            }
            if (co->stochastic)
                ck_assert_msg(within >= 0.99 * total, "%s %s sev %d: %.3f%% within ±1", qb_preset_name(p), co->name, sev,
                              100.0 * within / total);
            else
                ck_assert_msg(maxd <= 1 && at1 <= 0.02 * total, "%s %s sev %d: max |d| %d, %.3f%% at 1", qb_preset_name(p),
                              co->name, sev, maxd, 100.0 * at1 / total);
        }
    }
    free(out);
    qb_frost_free(&fr);
}

START_TEST(test_reference_cifar) { check_preset(QB_PRESET_CIFAR, 4); }
END_TEST
START_TEST(test_reference_tinyimagenet) { check_preset(QB_PRESET_TINYIMAGENET, 2); }
END_TEST
START_TEST(test_reference_imagenet) { check_preset(QB_PRESET_IMAGENET, 1); }
END_TEST

/* impulse_noise: unchanged values equal the input; newly-255 and newly-0 fractions ≈ amount/2 each;
 * the overall changed fraction matches §7.4 (counter stream, 10 seeds). */
START_TEST(test_impulse_distribution) {
    if (!have_ref("impulse distribution")) return;
    static const double amount[5] = {0.03, 0.06, 0.09, 0.17, 0.27};
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, 224, NULL};
    qb_image clean;
    load_ref(&clean, QB_PRESET_IMAGENET, NULL, 0, 0);
    size_t n = 224 * 224 * 3;
    uint8_t *out = malloc(n);
    int idx = qb_corruption_find("impulse_noise");
    for (int sev = 1; sev <= 5; sev++) {
        long to255 = 0, to0 = 0, other = 0;
        for (int seed = 0; seed < 4; seed++) {
            ck_assert_int_eq(qb_corrupt(out, clean.rgb, idx, sev, QB_CRNG_COUNTER, seed, 42, &ctx), 0);
            for (size_t k = 0; k < n; k++) {
                if (out[k] == clean.rgb[k]) continue;
                if (out[k] == 255) to255++;
                else if (out[k] == 0) to0++;
                else other++;
            }
        }
        ck_assert_int_eq(other, 0);
        double a = amount[sev - 1], N = 4.0 * n;
        /* a value already at 255 (or 0) cannot change to it, so allow a small deficit */
        ck_assert_msg(fabs(to255 / N - a / 2) < 0.1 * a / 2 + 0.002, "sev %d salt %.4f", sev, to255 / N);
        ck_assert_msg(fabs(to0 / N - a / 2) < 0.1 * a / 2 + 0.002, "sev %d pepper %.4f", sev, to0 / N);
    }
    free(out);
    qb_image_free(&clean);
}
END_TEST

/* The counter-RNG path must match the reference in distribution: mean absolute change from the
 * clean image over k = 20 seeds against §7.4 (cifar). §7.3 suggests |MAC − mean| ≤ 3·sd/√k +
 * 0.02·mean, but the tabled mean is itself an average of only 20 seeds (spatter sev 5: 5.16 over
 * seeds 0..19, 5.58 over 400 NumPy seeds), so its own error is added: 3·sd·√(1/k + 1/20). */
START_TEST(test_stochastic_mac_cifar) {
    if (!have_ref("MAC distribution")) return;
    static const struct { const char *name; double mean[5], sd[5]; } tab[] = {
        {"gaussian_noise", {7.69, 11.40, 15.05, 16.85, 18.64}, {0.11, 0.17, 0.22, 0.25, 0.28}},
        {"shot_noise", {5.71, 8.00, 12.49, 14.35, 17.48}, {0.06, 0.09, 0.10, 0.13, 0.14}},
        {"impulse_noise", {1.29, 2.63, 3.79, 6.42, 8.89}, {0.13, 0.18, 0.34, 0.32, 0.33}},
        {"speckle_noise", {5.53, 9.05, 10.79, 14.24, 17.64}, {0.09, 0.14, 0.17, 0.22, 0.28}},
        {"glass_blur", {11.82, 11.95, 11.86, 19.73, 19.10}, {0.31, 0.30, 0.27, 0.54, 0.52}},
        {"motion_blur", {7.22, 10.90, 13.87, 13.87, 16.40}, {1.81, 2.09, 2.21, 2.21, 2.28}},
        {"snow", {9.19, 20.60, 21.45, 30.98, 46.22}, {0.67, 1.32, 2.10, 2.83, 6.53}},
        {"frost", {28.55, 42.23, 47.36, 43.26, 42.47}, {6.90, 10.07, 13.50, 13.54, 14.04}},
        {"fog", {11.55, 23.06, 29.71, 35.09, 42.80}, {0.54, 1.10, 1.42, 1.81, 2.49}},
        {"elastic_transform", {26.04, 23.62, 21.18, 19.26, 15.44}, {5.91, 5.44, 4.59, 3.62, 1.89}},
        {"spatter", {0.97, 2.53, 5.83, 3.00, 5.16}, {0.32, 0.58, 0.88, 0.74, 0.88}},
    };
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/frost", data_dir());
    qb_frost fr;
    ck_assert_msg(qb_frost_load(&fr, dir, QB_PRESET_CIFAR) == 0, "%s", qb_last_error());
    qb_corrupt_ctx ctx = {QB_PRESET_CIFAR, 32, &fr};
    qb_image clean[4];
    for (int i = 0; i < 4; i++) load_ref(&clean[i], QB_PRESET_CIFAR, NULL, 0, i);
    size_t n = 32 * 32 * 3;
    uint8_t out[32 * 32 * 3];
    const int k = 20;
    for (size_t t = 0; t < sizeof tab / sizeof tab[0]; t++) {
        int c = qb_corruption_find(tab[t].name);
        ck_assert_int_ge(c, 0);
        for (int sev = 1; sev <= 5; sev++) {
            double mac = 0;
            for (int seed = 0; seed < k; seed++)
                for (int i = 0; i < 4; i++) {
                    ck_assert_int_eq(qb_corrupt(out, clean[i].rgb, c, sev, QB_CRNG_COUNTER, seed, qb_image_id(ref_names[2][i]), &ctx), 0);
                    long s = 0;
                    for (size_t j = 0; j < n; j++) s += abs((int)out[j] - (int)clean[i].rgb[j]);
                    mac += (double)s / n;
                }
            mac /= 4.0 * k;
            double tol = 3 * tab[t].sd[sev - 1] * sqrt(1.0 / k + 1.0 / 20) + 0.02 * tab[t].mean[sev - 1];
            ck_assert_msg(fabs(mac - tab[t].mean[sev - 1]) <= tol, "%s sev %d: MAC %.3f, reference %.2f ± %.3f",
                          tab[t].name, sev, mac, tab[t].mean[sev - 1], tol);
        }
    }
    for (int i = 0; i < 4; i++) qb_image_free(&clean[i]);
    qb_frost_free(&fr);
}
END_TEST

/* gaussian_noise on the counter stream: the residuals of a pixel's channels are uncorrelated, and
 * the noise has the tabled σ where no clipping happens. */
START_TEST(test_gaussian_noise_model) {
    int S = 224;
    size_t n = (size_t)S * S * 3;
    uint8_t *in = malloc(n), *out = malloc(n);
    for (size_t k = 0; k < n; k++) in[k] = 128;
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, S, NULL};
    ck_assert_int_eq(qb_corrupt(out, in, qb_corruption_find("gaussian_noise"), 1, QB_CRNG_COUNTER, 3, 9, &ctx), 0);
    double s[3] = {0}, s2[3] = {0}, s01 = 0;
    for (size_t p = 0; p < (size_t)S * S; p++) {
        double r[3];
        for (int k = 0; k < 3; k++) r[k] = out[3 * p + k] - (128 - 0.5), s[k] += r[k], s2[k] += r[k] * r[k];
        s01 += r[0] * r[1];
    }
    double N = (double)S * S, m0 = s[0] / N, m1 = s[1] / N;
    double v0 = s2[0] / N - m0 * m0, v1 = s2[1] / N - m1 * m1;
    ck_assert_double_eq_tol(m0, 0, 0.5);
    ck_assert_double_eq_tol(sqrt(v0), sqrt(0.08 * 255 * 0.08 * 255 + 1.0 / 12), 0.03 * 0.08 * 255);
    ck_assert_double_lt(fabs((s01 / N - m0 * m1) / sqrt(v0 * v1)), 0.02);
    free(in), free(out);
}
END_TEST

/* shot_noise on the counter stream at 224 px (the alias-table sampler): on flat images, the
 * histogram of output bytes matches Poisson(v/255·c) mapped through 255·clip(k/c), by a χ² test
 * over the bins with ≥ 5 expected counts, and the mean matches. */
START_TEST(test_shot_noise_poisson) {
    int S = 224;
    size_t n = (size_t)S * S * 3;
    uint8_t *in = malloc(n), *out = malloc(n);
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, S, NULL};
    static const int vals[4] = {0, 9, 128, 255}, sevs[2] = {1, 5};
    static const double cs[2] = {60, 3};
    for (int si = 0; si < 2; si++)
        for (int vi = 0; vi < 4; vi++) {
            memset(in, vals[vi], n);
            ck_assert_int_eq(qb_corrupt(out, in, qb_corruption_find("shot_noise"), sevs[si], QB_CRNG_COUNTER, 7, 3, &ctx), 0);
            double lam = vals[vi] / 255.0 * cs[si], p = exp(-lam), P[256] = {0}, mean = 0;
            for (int k = 0; k < 1000; k++) {
                double v = k / cs[si];
                P[(int)(255.0 * (v > 1 ? 1 : v))] += p;
                p *= lam / (k + 1);
            }
            long h[256] = {0};
            double got = 0;
            for (size_t i = 0; i < n; i++) h[out[i]]++, got += out[i];
            for (int b = 0; b < 256; b++) mean += b * P[b];
            double chi2 = 0;
            int df = -1;
            for (int b = 0; b < 256; b++) {
                double e = P[b] * (double)n;
                if (e >= 5) chi2 += (h[b] - e) * (h[b] - e) / e, df++;
                else ck_assert_msg(h[b] <= 5 + 10 * e, "v %d sev %d: byte %d seen %ld times, expected %.2f", vals[vi],
                                   sevs[si], b, h[b], e);
            }
            if (df > 0)
                ck_assert_msg(chi2 < df + 6 * sqrt(2.0 * df), "v %d sev %d: chi2 %.1f on %d dof", vals[vi], sevs[si], chi2, df);
            ck_assert_double_eq_tol(got / (double)n, mean, 0.2 + 0.01 * mean);
        }
    free(in), free(out);
}
END_TEST

/* The bulk samplers equal their one-at-a-time definitions on the counter stream, and leave the
 * stream where those would: qbc_uniforms_exact = qb_crng_uniform n times, qbc_below(a) =
 * (qbc_uniforms < a), for n not a multiple of the vector or chunk width. */
START_TEST(test_bulk_draws) {
    enum { N = 1003 };
    static double u[N], v[N];
    static uint8_t m[N];
    qb_crng a, b;
    qb_crng_counter(&a, 11, 22, "fog", 3), qb_crng_counter(&b, 11, 22, "fog", 3);
    qbc_uniforms_exact(&a, u, N);
    for (int i = 0; i < N; i++) ck_assert_msg(u[i] == qb_crng_uniform(&b), "draw %d", i);
    ck_assert(qb_crng_uniform(&a) == qb_crng_uniform(&b));
    const double as[5] = {0, 0.03, 0.5, 0.999, 1};
    for (int t = 0; t < 5; t++) {
        qb_crng_counter(&a, 5, 6, "impulse_noise", 2), qb_crng_counter(&b, 5, 6, "impulse_noise", 2);
        qbc_below(&a, as[t], m, N);
        qbc_uniforms(&b, v, N);
        int ones = 0;
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(m[i], v[i] < as[t]);
            ones += m[i];
        }
        ck_assert(qb_crng_uniform(&a) == qb_crng_uniform(&b));
        if (t == 2) ck_assert(ones > 400 && ones < 600);
    }
}
END_TEST

/* qb_corrupt_sevs (several severities in one call; zoom_blur, brightness and saturate share work
 * across them) equals qb_corrupt severity by severity, for all 19, every severity subset tried
 * (all five, and 2+4), at 224 and 32 px. */
START_TEST(test_sevs_equal_single) {
    static const qb_preset ps[2] = {QB_PRESET_IMAGENET, QB_PRESET_CIFAR};
    static const unsigned masks[2] = {0x3E, 0x14};
    for (int pi = 0; pi < 2; pi++) {
        int S = qb_preset_size(ps[pi]);
        size_t n = (size_t)S * S * 3;
        uint8_t *in = malloc(n), *one = malloc(n), *o[6] = {NULL};
        for (int s = 1; s <= 5; s++) o[s] = malloc(n);
        uint32_t h = 99;
        for (size_t k = 0; k < n; k++) { /* a ramp over the full range, with noise */
            h = h * 1664525u + 1013904223u;
            int g = (int)(k / 3 % S) * 255 / (S - 1) + (int)(h >> 28) - 8;
            in[k] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
        }
        qb_corrupt_ctx ctx = {ps[pi], S, NULL};
        for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
            if (!strcmp(qb_corruptions[c].name, "frost")) continue; /* needs the textures */
            for (int mi = 0; mi < 2; mi++) {
                ck_assert_int_eq(qb_corrupt_sevs(o, in, c, masks[mi], QB_CRNG_COUNTER, 5, 77, &ctx), 0);
                for (int s = 1; s <= 5; s++) {
                    if (!(masks[mi] >> s & 1)) continue;
                    ck_assert_int_eq(qb_corrupt(one, in, c, s, QB_CRNG_COUNTER, 5, 77, &ctx), 0);
                    ck_assert_msg(!memcmp(one, o[s], n), "%s sev %d (mask 0x%x, %d px)", qb_corruptions[c].name, s,
                                  masks[mi], S);
                }
            }
        }
        ck_assert_int_eq(qb_corrupt_sevs(o, in, 0, 0, QB_CRNG_COUNTER, 5, 77, &ctx), QB_EXIT_USAGE);
        ck_assert_int_eq(qb_corrupt_sevs(o, in, 0, 0x41, QB_CRNG_COUNTER, 5, 77, &ctx), QB_EXIT_USAGE);
        for (int s = 1; s <= 5; s++) free(o[s]);
        free(in), free(one);
    }
}
END_TEST

/* qbc_randints on the counter stream (two draws per word): every value in [lo, hi), each of a small
 * span's values about equally often, odd counts, and a span near 2^32 (wrapping arithmetic). */
START_TEST(test_randints_range) {
    enum { N = 6001 };
    static int v[N];
    /* the fourth span, 3·2^30, rejects a quarter of the 32-bit draws: the redraw path */
    static const long los[4] = {-2, -3, -2147483648L, -1610612736L}, his[4] = {2, 3, 2147483647L, 1610612736L};
    for (int t = 0; t < 4; t++) {
        qb_crng r;
        qb_crng_counter(&r, 3, 4, "glass_blur", 5);
        qbc_randints(&r, los[t], his[t], v, N);
        long cnt[6] = {0};
        for (int i = 0; i < N; i++) {
            ck_assert_msg(v[i] >= los[t] && v[i] < his[t], "span %d: %d outside [%ld, %ld)", t, v[i], los[t], his[t]);
            if (t < 2) cnt[v[i] - los[t]]++;
        }
        for (long k = 0; t < 2 && k < his[t] - los[t]; k++) {
            double e = (double)N / (double)(his[t] - los[t]);
            ck_assert_msg(fabs(cnt[k] - e) < 5 * sqrt(e), "span %d: value %ld seen %ld times, expected %.0f", t, k + los[t], cnt[k], e);
        }
        if (t >= 2) { /* quarters of the range about equally often (a biased redraw would skew them) */
            long q[4] = {0};
            double span = (double)his[t] - (double)los[t];
            for (int i = 0; i < N; i++) q[(int)(((double)v[i] - (double)los[t]) / span * 4)]++;
            for (int k = 0; k < 4; k++)
                ck_assert_msg(fabs(q[k] - N / 4.0) < 5 * sqrt(N / 4.0), "span %d: quarter %d has %ld of %d", t, k, q[k], N);
            /* the same call on the same stream gives the same draws */
            static int w[N];
            qb_crng_counter(&r, 3, 4, "glass_blur", 5);
            qbc_randints(&r, los[t], his[t], w, N);
            ck_assert(!memcmp(v, w, sizeof v));
        }
    }
}
END_TEST

/* impulse_noise on the counter stream equals its definition computed here one value at a time:
 * per chunk of 1024 values, flipped = the value's 32-bit half of the first (m + 1)/2 words below
 * round(a·2^32), salted = its bit of the next words (catches the vector path's lane order). */
START_TEST(test_impulse_definition) {
    int S = 225; /* 151875 values: 148 chunks and a 323-value tail (the scalar path) */
    size_t n = (size_t)S * S * 3;
    uint8_t *in = malloc(n), *out = malloc(n);
    ck_assert(in && out);
    uint32_t h = 7;
    for (size_t k = 0; k < n; k++) h = h * 1664525u + 1013904223u, in[k] = (uint8_t)(h >> 24);
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, S, NULL};
    for (int sev = 1; sev <= 5; sev += 4) {
        ck_assert_int_eq(qb_corrupt(out, in, qb_corruption_find("impulse_noise"), sev, QB_CRNG_COUNTER, 9, 31, &ctx), 0);
        qb_crng r;
        qb_crng_counter(&r, 9, 31, "impulse_noise", sev);
        double a = sev == 1 ? 0.03 : 0.27;
        uint64_t T = (uint64_t)nearbyint(a * 4294967296.0), w[512 + 16];
        long flips = 0;
        for (size_t i0 = 0; i0 < n; i0 += 1024) {
            size_t m = n - i0 < 1024 ? n - i0 : 1024, nf = (m + 1) / 2;
            qbc_words(&r, w, nf + (m + 63) / 64);
            for (size_t j = 0; j < m; j++) {
                int f = (w[j / 2] >> (32 * (j % 2)) & 0xFFFFFFFFu) < T, sv = (int)(w[nf + j / 64] >> (j % 64) & 1);
                uint8_t want = f ? (sv ? 255 : 0) : in[i0 + j];
                flips += f;
                ck_assert_msg(out[i0 + j] == want, "sev %d value %zu: %d, definition %d", sev, i0 + j, out[i0 + j], want);
            }
        }
        ck_assert(fabs(flips / (double)n - a) < 0.01);
    }
    free(in), free(out);
}
END_TEST

/* The division-free x/255 the hot loops use equals the division for every byte value. */
START_TEST(test_div255_exact) {
    for (int x = 0; x < 256; x++) {
        volatile double d = 255.0;
        volatile float f = 255.0f;
        ck_assert_msg(qbc_div255((double)x) == (double)x / d, "double %d", x);
        ck_assert_msg(qbc_div255f((float)x) == (float)x / f, "float %d", x);
    }
}
END_TEST

/* defocus_blur against the reference's definition computed directly, without data: the kernel
 * as disk() builds it (binary disk normalised in f32, cv2.GaussianBlur in f32 with REFLECT_101
 * inside the array), then cv2.filter2D as an f64 correlation on the REFLECT_101-padded image,
 * and np.uint8(255·clip). imagenet severities 4–5 are the ones where the blur reaches the
 * kernel's edge (the fold the library corrects for). Image: flat regions and noise. */
static int reflect101(int i, int n) {
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}
START_TEST(test_defocus_direct) {
    static const double params[5][2] = {{3, 0.1}, {4, 0.5}, {6, 0.5}, {8, 0.5}, {10, 0.5}};
    int S = 224;
    size_t n = (size_t)S * S * 3;
    uint8_t *in = malloc(n), *out = malloc(n);
    uint32_t h = 12345;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int k = 0; k < 3; k++) {
                h = h * 1664525u + 1013904223u;
                in[((size_t)y * S + x) * 3 + k] = x < S / 2 ? (uint8_t)(40 + 60 * k + (y > S / 2) * 90) : (uint8_t)(h >> 24);
            }
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, S, NULL};
    double *acc = malloc((size_t)S * sizeof(double));
    for (int sev = 1; sev <= 5; sev++) {
        double r = params[sev - 1][0], alias = params[sev - 1][1];
        int L = r <= 8 ? 8 : (int)r, sz = 2 * L + 1, ks = r <= 8 ? 3 : 5, kr = ks / 2, count = 0;
        float D[21 * 21], T[21 * 21], K[21 * 21], g[5];
        for (int a = 0; a < sz; a++)
            for (int b = 0; b < sz; b++) {
                double ya = a - L, xb = b - L;
                D[a * sz + b] = (xb * xb + ya * ya) <= r * r;
                count += D[a * sz + b] != 0;
            }
        for (int i = 0; i < sz * sz; i++) D[i] /= (float)count;
        double gd[5], gs = 0;
        for (int m = 0; m < ks; m++) gs += gd[m] = exp(-0.5 / (alias * alias) * (m - kr) * (m - kr));
        for (int m = 0; m < ks; m++) g[m] = (float)(gd[m] * (1.0 / gs));
        for (int a = 0; a < sz; a++)
            for (int b = 0; b < sz; b++) {
                float t = g[kr] * D[a * sz + b];
                for (int m = 1; m <= kr; m++)
                    t += g[kr + m] * (D[a * sz + reflect101(b - m, sz)] + D[a * sz + reflect101(b + m, sz)]);
                T[a * sz + b] = t;
            }
        for (int a = 0; a < sz; a++)
            for (int b = 0; b < sz; b++) {
                float t = g[kr] * T[a * sz + b];
                for (int m = 1; m <= kr; m++)
                    t += g[kr + m] * (T[reflect101(a - m, sz) * sz + b] + T[reflect101(a + m, sz) * sz + b]);
                K[a * sz + b] = t;
            }
        ck_assert_int_eq(qb_corrupt(out, in, qb_corruption_find("defocus_blur"), sev, QB_CRNG_COUNTER, 0, 0, &ctx), 0);
        long at1 = 0;
        int maxd = 0;
        for (int k = 0; k < 3; k++)
            for (int y = 0; y < S; y++) {
                for (int x = 0; x < S; x++) {
                    double s = 0;
                    for (int a = 0; a < sz; a++)
                        for (int b = 0; b < sz; b++)
                            s += (double)K[a * sz + b] *
                                 (in[((size_t)reflect101(y + a - L, S) * S + reflect101(x + b - L, S)) * 3 + k] / 255.0);
                    acc[x] = s;
                }
                for (int x = 0; x < S; x++) {
                    double v = acc[x] < 0 ? 0 : acc[x] > 1 ? 1 : acc[x];
                    int d = abs((int)(uint8_t)(v * 255.0) - (int)out[((size_t)y * S + x) * 3 + k]);
                    at1 += d == 1, maxd = d > maxd ? d : maxd;
                }
            }
        ck_assert_msg(maxd <= 1 && at1 <= (long)(n / 10000), "defocus sev %d: max |d| %d, %ld values at 1", sev, maxd, at1);
    }
    free(acc), free(in), free(out);
}
END_TEST

/* The counter stream depends on (seed, image id, corruption, severity) only. */
START_TEST(test_counter_keyed) {
    int S = 32;
    uint8_t in[32 * 32 * 3], a[32 * 32 * 3], b[32 * 32 * 3];
    for (int k = 0; k < S * S * 3; k++) in[k] = (uint8_t)(k * 7);
    qb_corrupt_ctx ctx = {QB_PRESET_CIFAR, S, NULL};
    int c = qb_corruption_find("glass_blur");
    qb_corrupt(a, in, c, 3, QB_CRNG_COUNTER, 5, 77, &ctx);
    qb_corrupt(b, in, c, 3, QB_CRNG_COUNTER, 5, 77, &ctx);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    qb_corrupt(b, in, c, 3, QB_CRNG_COUNTER, 6, 77, &ctx);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    qb_corrupt(b, in, c, 3, QB_CRNG_COUNTER, 5, 78, &ctx);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
}
END_TEST

START_TEST(test_selection_and_errors) {
    int sel[QB_N_CORRUPTIONS], sev[6];
    ck_assert_int_eq(qb_corruption_select("common", sel), 0);
    int cnt = 0;
    for (int i = 0; i < QB_N_CORRUPTIONS; i++) cnt += sel[i];
    ck_assert_int_eq(cnt, 15);
    ck_assert_int_eq(qb_corruption_select("noise,saturate", sel), 0);
    ck_assert(sel[0] && sel[1] && sel[2] && sel[18] && !sel[15]);
    ck_assert_int_eq(qb_corruption_select("all", sel), 0);
    ck_assert(sel[15] && sel[18]);
    ck_assert_int_eq(qb_corruption_select("fogg", sel), QB_EXIT_USAGE);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "fogg"));
    ck_assert_int_eq(qb_severity_select("1-5", sev), 0);
    ck_assert(sev[1] && sev[5]);
    ck_assert_int_eq(qb_severity_select("2,4", sev), 0);
    ck_assert(!sev[1] && sev[2] && !sev[3] && sev[4]);
    ck_assert_int_eq(qb_severity_select("0-3", sev), QB_EXIT_USAGE);
    ck_assert_int_eq(qb_severity_select("6", sev), QB_EXIT_USAGE);
    ck_assert_int_eq(qb_severity_select("x", sev), QB_EXIT_USAGE);
    qb_preset p;
    ck_assert_int_eq(qb_preset_parse("tinyimagenet", &p), 0);
    ck_assert_int_eq(p, QB_PRESET_TINYIMAGENET);
    ck_assert_int_eq(qb_preset_parse("svhn", &p), QB_EXIT_USAGE);
    /* an image smaller than the preset */
    uint8_t px[20 * 20 * 3] = {0};
    qb_image small = {20, 20, px}, dst;
    ck_assert_int_eq(qb_corrupt_prepare(&dst, &small, QB_PRESET_CIFAR, "tiny.png"), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "smaller"));
    /* missing frost textures */
    qb_frost fr;
    ck_assert_int_eq(qb_frost_load(&fr, "/nonexistent/frost", QB_PRESET_CIFAR), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "frost"));
}
END_TEST

/* imagenet preparation: Resize(256) + CenterCrop(224) of the sample gives the reference clean crop. */
START_TEST(test_prepare_imagenet) {
    if (!have_ref("imagenet preparation")) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/imagenet-sample/n01440764_tench.JPEG", data_dir());
    qb_image src, dst, ref;
    if (qb_image_load(&src, path)) {
        printf("corruptions: SKIPPED imagenet preparation: %s\n", qb_last_error());
        return;
    }
    ck_assert_int_eq(qb_corrupt_prepare(&dst, &src, QB_PRESET_IMAGENET, path), 0);
    load_ref(&ref, QB_PRESET_IMAGENET, NULL, 0, 0);
    ck_assert_int_eq(dst.w, 224);
    ck_assert_int_eq(memcmp(dst.rgb, ref.rgb, 224 * 224 * 3), 0);
    qb_image_free(&src), qb_image_free(&dst), qb_image_free(&ref);
}
END_TEST

/* `questbench corrupt`: bad input is refused before any work with the documented exit codes, and
 * generated files do not depend on the thread count or batch size. */
START_TEST(test_cli_errors_and_threads) {
    char cmd[4096], *out = NULL, *err = NULL;
    const char *bin = qbt_bin();
    snprintf(cmd, sizeof cmd, "%s corrupt --data /nonexistent --save /tmp/x --corruptions fogg", bin);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "fogg"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s corrupt --data /nonexistent --save /tmp/x --severities 2-6", bin);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "1-5"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s corrupt --data /nonexistent --save /tmp/x --corruptions frost --frost-dir /nonexistent", bin);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 4);
    ck_assert_ptr_nonnull(strstr(err, "frost"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s corrupt --data /nonexistent --save /proc/questbench-no --corruptions noise", bin);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 5);
    free(out), free(err);
    char data[1024];
    struct stat st;
    snprintf(data, sizeof data, "%s/cifar10/test", data_dir());
    if (stat(data, &st)) {
        printf("corruptions: SKIPPED thread independence: %s not found (set QUESTBENCH_DATA)\n", data);
        return;
    }
    const char *d = qbt_tmpdir();
    snprintf(cmd, sizeof cmd,
             "(%s corrupt --data %s --preset cifar --limit 6 --corruptions noise,glass_blur,elastic_transform,spatter "
             "--severities 2,5 --seed 3 --save %s/t1 --threads 1 && "
             "%s corrupt --data %s --preset cifar --limit 6 --corruptions noise,glass_blur,elastic_transform,spatter "
             "--severities 2,5 --seed 3 --save %s/t2 --threads 2 --batch 4 && diff -r %s/t1 %s/t2 && rm -rf %s)",
             bin, data, d, bin, data, d, d, d, d);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
}
END_TEST

Suite *corruptions_suite(void) {
    Suite *s = suite_create("corruptions");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reference_cifar);
    tcase_add_test(tc, test_reference_tinyimagenet);
    tcase_add_test(tc, test_reference_imagenet);
    tcase_add_test(tc, test_impulse_distribution);
    tcase_add_test(tc, test_stochastic_mac_cifar);
    tcase_add_test(tc, test_prepare_imagenet);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("unit");
    tcase_add_test(tu, test_gaussian_noise_model);
    tcase_add_test(tu, test_shot_noise_poisson);
    tcase_add_test(tu, test_bulk_draws);
    tcase_add_test(tu, test_div255_exact);
    tcase_add_test(tu, test_impulse_definition);
    tcase_add_test(tu, test_randints_range);
    tcase_add_test(tu, test_sevs_equal_single);
    tcase_add_test(tu, test_defocus_direct);
    tcase_add_test(tu, test_counter_keyed);
    tcase_add_test(tu, test_selection_and_errors);
    tcase_add_test(tu, test_cli_errors_and_threads);
    suite_add_tcase(s, tu);
    return s;
}
