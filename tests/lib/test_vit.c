/* test_vit.c — lib/vit.c against PyTorch: logits, input gradient and every parameter
 * gradient on the fixtures written by tests/ref/make_vit_fixtures.py; thread-count
 * determinism; inference/input-grad/full modes agree. */
#include "qbtest.h"
#include "model.h"
#include "safetensors.h"
#include "vit.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

static const char *FIXTURES[] = {"sdpa_tiny",      "qknorm_small",   "quest_deep",     "quest_avg",
                                 "sdpa_avg_nocls", "qknorm_f16",     "quest_bf16",     "cifar_sdpa",
                                 "cifar_quest",    "qknorm_avg_cls", "quest_nocls_clamp", "sdpa_p5_nobias"};
#define N_FIXTURES 12

typedef struct {
    qb_model m;
    st_file ref;
    float *x, *logits, *dlogits, *dx;
    int B;
} fixture;

static float *ref_tensor(st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "reference tensor %s missing", name);
    float *buf = malloc(t->numel * sizeof(float));
    ck_assert_int_eq(st_to_f32(f, t, buf), 0);
    if (n) *n = t->numel;
    return buf;
}

static void fixture_open(fixture *fx, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "vit/%s.safetensors", name);
    int rc = qb_model_load(&fx->m, qbt_fixture(path), NULL);
    ck_assert_msg(rc == 0, "load %s: %s", name, qb_last_error());
    snprintf(path, sizeof path, "vit/%s.ref.safetensors", name);
    ck_assert_int_eq(st_open(&fx->ref, qbt_fixture(path)), 0);
    fx->x = ref_tensor(&fx->ref, "x", NULL);
    fx->logits = ref_tensor(&fx->ref, "logits", NULL);
    fx->dlogits = ref_tensor(&fx->ref, "dlogits", NULL);
    fx->dx = ref_tensor(&fx->ref, "dx", NULL);
    fx->B = (int)st_find(&fx->ref, "x")->shape[0];
}

static void fixture_close(fixture *fx) {
    free(fx->x), free(fx->logits), free(fx->dlogits), free(fx->dx);
    st_close(&fx->ref);
    qb_model_free(&fx->m);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

START_TEST(test_logits_match_pytorch) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    int K = fx.m.vit.cfg.classes;
    float *out = malloc(sizeof(float) * fx.B * K);
    ck_assert_int_eq(vit_forward(&fx.m.vit, fx.x, fx.B, VIT_MODE_INFER, out), 0);
    float maxabs = 0, maxd = 0;
    for (int i = 0; i < fx.B * K; i++) {
        maxabs = fmaxf(maxabs, fabsf(fx.logits[i]));
        maxd = fmaxf(maxd, fabsf(out[i] - fx.logits[i]));
    }
    ck_assert_msg(maxd <= 1e-4f * maxabs, "%s: max |Δlogit| %g > 1e-4·%g", FIXTURES[_i], maxd, maxabs);
    ck_assert_float_gt(maxabs, 0.1f); /* the fixture is not degenerate */
    free(out);
    fixture_close(&fx);
}
END_TEST

/* Every parameter gradient and the input gradient within 1e-3 relative error (‖Δ‖/‖ref‖);
 * every parameter tensor of the engine has its reference and is compared. */
START_TEST(test_gradients_match_pytorch) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    size_t nx = (size_t)fx.B * 3 * vm->cfg.img_size * vm->cfg.img_size;
    float *dx = malloc(nx * sizeof(float));
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    ck_assert_int_eq(vit_zero_grad(vm), 0);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, dx), 0);
    double e = rel_err(dx, fx.dx, nx);
    ck_assert_msg(e <= 1e-3, "%s: input gradient relative error %g", FIXTURES[_i], e);
    /* every engine parameter key against the reference grad.<key> */
    int compared = 0, n_ref = 0;
    char key[256], refname[264];
    for (int i = 0; i < fx.ref.n_tensors; i++) n_ref += !strncmp(fx.ref.tensors[i].name, "grad.", 5);
    for (int i = 0; qb_param_name(&vm->cfg, i, key, sizeof key); i++) {
        float *g;
        size_t n, nref;
        ck_assert_msg(qb_param_lookup(&vm->cfg, &vm->grads, key, &g, &n) == 0, "%s", qb_last_error());
        snprintf(refname, sizeof refname, "grad.%s", key);
        float *g_ref = ref_tensor(&fx.ref, refname, &nref);
        ck_assert_uint_eq(n, nref);
        double ge = rel_err(g, g_ref, n), rn = 0, dn = 0;
        for (size_t j = 0; j < n; j++) rn += (double)g_ref[j] * g_ref[j], dn += ((double)g[j] - g_ref[j]) * ((double)g[j] - g_ref[j]);
        if (strstr(key, "k_norm.bias")) {
            /* exactly zero in theory: k̃ = γ⊙k̂ + β adds q̃·β to every logit of a query's row, a
             * shift softmax ignores; both sides hold rounding noise only */
            ck_assert_msg(sqrt(dn) <= 1e-6 * sqrt((double)n), "%s: gradient of %s is %g from the reference's (|ref| %g), "
                          "not ~0", FIXTURES[_i], key, sqrt(dn), sqrt(rn));
        } else {
            ck_assert_msg(rn > 0 && sqrt(dn) <= 1e-3 * sqrt(rn), "%s: gradient of %s relative error %g (|ref| %g)",
                          FIXTURES[_i], key, ge, sqrt(rn));
        }
        compared++;
        free(g_ref);
    }
    ck_assert_int_eq(compared, n_ref); /* no reference gradient left over either */
    ck_assert_int_gt(compared, 10);
    free(dx);
    fixture_close(&fx);
}
END_TEST

/* Inference and input-gradient modes give identical logits; full (training) mode tiles its
 * GEMMs over the whole batch, so its input gradient agrees to rounding only. */
START_TEST(test_modes_agree) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    int K = vm->cfg.classes;
    size_t nx = (size_t)fx.B * 3 * vm->cfg.img_size * vm->cfg.img_size;
    float *dx1 = malloc(nx * sizeof(float)), *dx2 = malloc(nx * sizeof(float));
    float *l0 = malloc(sizeof(float) * fx.B * K), *l1 = malloc(sizeof(float) * fx.B * K);
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INFER, l0), 0);
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, l1), 0);
    ck_assert_int_eq(memcmp(l0, l1, sizeof(float) * fx.B * K), 0);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, dx1), 0);
    ck_assert_ptr_null(vm->grads_mem); /* input-gradient mode never allocates weight gradients */
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    ck_assert_int_eq(vit_zero_grad(vm), 0);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, dx2), 0);
    double num = 0, den = 0;
    for (size_t i = 0; i < nx; i++) num += ((double)dx1[i] - dx2[i]) * ((double)dx1[i] - dx2[i]), den += (double)dx2[i] * dx2[i];
    ck_assert_msg(sqrt(num) <= 1e-5 * sqrt(den), "input-grad vs full dx: relative difference %g", sqrt(num / den));
    free(dx1), free(dx2), free(l0), free(l1);
    fixture_close(&fx);
}
END_TEST

/* Logits, input gradient and weight gradients bit-identical at 1 and 2 threads (full mode), and
 * logits and input gradient in input-gradient mode. */
START_TEST(test_thread_count_invariance) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    int K = vm->cfg.classes;
    size_t nx = (size_t)fx.B * 3 * vm->cfg.img_size * vm->cfg.img_size;
    float *res[2][3];
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        res[t][0] = malloc(sizeof(float) * fx.B * K);
        res[t][1] = malloc(nx * sizeof(float));
        res[t][2] = malloc(vm->num_params * sizeof(float));
        ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, res[t][0]), 0);
        ck_assert_int_eq(vit_zero_grad(vm), 0);
        ck_assert_int_eq(vit_backward(vm, fx.dlogits, res[t][1]), 0);
        memcpy(res[t][2], vm->grads_mem, vm->num_params * sizeof(float));
    }
    /* input-gradient mode (its class-token-only last block included): logits and dx */
    float *ig[2][2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        ig[t][0] = malloc(sizeof(float) * fx.B * K), ig[t][1] = malloc(nx * sizeof(float));
        ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, ig[t][0]), 0);
        ck_assert_int_eq(vit_backward(vm, fx.dlogits, ig[t][1]), 0);
    }
    omp_set_num_threads(saved);
    ck_assert_int_eq(memcmp(ig[0][0], ig[1][0], sizeof(float) * fx.B * K), 0);
    ck_assert_int_eq(memcmp(ig[0][1], ig[1][1], nx * sizeof(float)), 0);
    for (int t = 0; t < 2; t++) free(ig[t][0]), free(ig[t][1]);
    ck_assert_int_eq(memcmp(res[0][0], res[1][0], sizeof(float) * fx.B * K), 0);
    ck_assert_int_eq(memcmp(res[0][1], res[1][1], nx * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(res[0][2], res[1][2], vm->num_params * sizeof(float)), 0);
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 3; j++) free(res[t][j]);
    fixture_close(&fx);
}
END_TEST

/* An image's logits and input gradient are bit-identical whether it is alone or at any
 * position in a batch (attacks rely on this: batch 1 vs 8 gives the same adversarials). */
START_TEST(test_batch_independence) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    int K = vm->cfg.classes, B = fx.B;
    size_t per = (size_t)3 * vm->cfg.img_size * vm->cfg.img_size;
    float *all = malloc(sizeof(float) * B * K), *dx_all = malloc(sizeof(float) * per * B);
    float *one = malloc(sizeof(float) * K), *dx_one = malloc(sizeof(float) * per);
    /* reversed order, so every image sits somewhere else than in the fixture */
    float *xr = malloc(sizeof(float) * per * B), *dlr = malloc(sizeof(float) * K * B);
    for (int b = 0; b < B; b++) {
        memcpy(xr + (size_t)b * per, fx.x + (size_t)(B - 1 - b) * per, per * sizeof(float));
        memcpy(dlr + (size_t)b * K, fx.dlogits + (size_t)(B - 1 - b) * K, K * sizeof(float));
    }
    ck_assert_int_eq(vit_forward(vm, xr, B, VIT_MODE_INPUT_GRAD, all), 0);
    ck_assert_int_eq(vit_backward(vm, dlr, dx_all), 0);
    for (int b = 0; b < B; b++) {
        int src = B - 1 - b;
        ck_assert_int_eq(vit_forward(vm, fx.x + (size_t)src * per, 1, VIT_MODE_INPUT_GRAD, one), 0);
        ck_assert_int_eq(vit_backward(vm, fx.dlogits + (size_t)src * K, dx_one), 0);
        ck_assert_int_eq(memcmp(one, all + (size_t)b * K, K * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(dx_one, dx_all + (size_t)b * per, per * sizeof(float)), 0);
    }
    free(all), free(dx_all), free(one), free(dx_one), free(xr), free(dlr);
    fixture_close(&fx);
}
END_TEST

START_TEST(test_backward_rejects_bad_input) {
    fixture fx;
    fixture_open(&fx, "sdpa_tiny");
    vit_model *vm = &fx.m.vit;
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0); /* no forward yet */
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "forward"));
    ck_assert_int_ne(vit_forward(vm, fx.x, 0, VIT_MODE_INFER, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "batch"));
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INFER, NULL), 0);
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0); /* inference mode keeps nothing */
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "inference"));
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, NULL), 0);
    ck_assert_int_ne(vit_backward(vm, NULL, NULL), 0); /* no dlogits */
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "dlogits"));
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, NULL), 0);
    /* a failed forward leaves nothing to go back through, not the previous forward's activations */
    ck_assert_int_ne(vit_forward(vm, fx.x, -1, VIT_MODE_INPUT_GRAD, NULL), 0);
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "no successful forward"));
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, NULL), 0);
    size_t per = (size_t)3 * vm->cfg.img_size * vm->cfg.img_size;
    float keep = fx.x[per + 7];
    fx.x[per + 7] = NAN; /* image 1 */
    ck_assert_int_ne(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "image 1 has a non-finite pixel"));
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "no successful forward"));
    fx.x[per + 7] = INFINITY;
    ck_assert_int_ne(vit_forward(vm, fx.x, fx.B, VIT_MODE_INFER, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "image 1"));
    fx.x[per + 7] = keep;
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, NULL), 0);
    fx.dlogits[1] = NAN;
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "non-finite"));
    fixture_close(&fx);
}
END_TEST

/* The attention scratch is sized for the forward's thread count: a backward at more threads
 * is refused (it would index scratch past the arena), at the same count it runs. */
START_TEST(test_backward_rejects_more_threads) {
    fixture fx;
    fixture_open(&fx, "sdpa_tiny");
    vit_model *vm = &fx.m.vit;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    ck_assert_int_eq(vm->act_threads, 1);
    omp_set_num_threads(3);
    ck_assert_int_ne(vit_backward(vm, fx.dlogits, NULL), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "threads"));
    omp_set_num_threads(1);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, NULL), 0);
    omp_set_num_threads(saved);
    fixture_close(&fx);
}
END_TEST

/* Training (full mode, dx NULL) computes the patch embedding's weight gradients only: the same
 * gradients as with dx, and the patch-gradient buffer is left alone. */
START_TEST(test_full_backward_without_dx) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    size_t nx = (size_t)fx.B * 3 * vm->cfg.img_size * vm->cfg.img_size;
    float *dx = malloc(nx * sizeof(float)), *g1 = malloc(vm->num_params * sizeof(float));
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    ck_assert_int_eq(vit_zero_grad(vm), 0);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, dx), 0);
    memcpy(g1, vm->grads_mem, vm->num_params * sizeof(float));
    size_t np = (size_t)fx.B * vm->cfg.n_patches * 3 * vm->cfg.patch * vm->cfg.patch;
    for (size_t i = 0; i < np; i++) vm->dacts.dpatches[i] = NAN; /* poison: must stay untouched */
    ck_assert_int_eq(vit_zero_grad(vm), 0);
    ck_assert_int_eq(vit_backward(vm, fx.dlogits, NULL), 0);
    ck_assert_int_eq(memcmp(g1, vm->grads_mem, vm->num_params * sizeof(float)), 0);
    for (size_t i = 0; i < np; i++) ck_assert(isnan(vm->dacts.dpatches[i]));
    free(dx), free(g1);
    fixture_close(&fx);
}
END_TEST

/* Input-gradient mode keeps only what backward reads: one image's patches (not B), L residual
 * layers (res[L] shares ln1's buffer), no normalised copy of the input; and its input gradient
 * is unchanged by that (test_modes_agree, test_batch_independence cover the values). */
START_TEST(test_input_grad_arena) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    vit_model *vm = &fx.m.vit;
    const vit_config *c = &vm->cfg;
    ck_assert_int_gt(fx.B, 1);
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_INPUT_GRAD, NULL), 0);
    size_t s_patches = offsetof(vit_acts, patches) / sizeof(float *), s_res = offsetof(vit_acts, res) / sizeof(float *);
    size_t one = (size_t)c->n_patches * 3 * c->patch * c->patch, bnd = (size_t)fx.B * c->n_tokens * c->dim;
    ck_assert_uint_eq(vm->act_sizes[s_patches], (one + 15) & ~(size_t)15);
    ck_assert_uint_eq(vm->act_sizes[s_res], (size_t)c->depth * ((bnd + 15) & ~(size_t)15));
    size_t input_grad_bytes = vm->acts_bytes;
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    ck_assert_uint_eq(vm->act_sizes[s_patches], ((size_t)fx.B * one + 15) & ~(size_t)15);
    ck_assert_uint_eq(vm->act_sizes[s_res], (size_t)(c->depth + 1) * ((bnd + 15) & ~(size_t)15));
    ck_assert_uint_lt(input_grad_bytes, vm->acts_bytes);
    fixture_close(&fx);
}
END_TEST

/* quest_nocls_clamp's eps is above many key norms, so its gradient test covers k / eps */
START_TEST(test_quest_fixture_clamps) {
    fixture fx;
    fixture_open(&fx, "quest_nocls_clamp");
    vit_model *vm = &fx.m.vit;
    const vit_config *c = &vm->cfg;
    ck_assert_int_eq(c->attn, VIT_ATTN_QUEST);
    ck_assert_int_eq(c->class_token, 0);
    ck_assert_int_eq(vit_forward(vm, fx.x, fx.B, VIT_MODE_FULL, NULL), 0);
    size_t bhn = (size_t)fx.B * c->heads * c->n_tokens, below = 0;
    for (int l = 0; l < c->depth; l++) {
        const float *kn = vm->acts.qk_stat + vm->act_layer_stride[offsetof(vit_acts, qk_stat) / sizeof(float *)] * l +
                          2 * bhn;
        for (size_t i = 0; i < bhn; i++) below += kn[i] < c->quest_eps;
    }
    double share = (double)below / (bhn * c->depth);
    ck_assert_msg(share > 0.25 && share < 0.75, "share of keys below quest eps %g: %g", c->quest_eps, share);
    fixture_close(&fx);
}
END_TEST

/* ViT-S/16 224 (timm: 4.6 GMACs): patch embedding 196·768·384, per block 197·384·(3·384 +
 * 384 + 2·1536) + 2·197²·384, head 384·1000 multiply-adds */
START_TEST(test_forward_flops_vit_s) {
    vit_config c = {0};
    c.img_size = 224, c.patch = 16, c.in_chans = 3, c.dim = 384, c.depth = 12, c.heads = 6, c.mlp_dim = 1536;
    c.classes = 1000, c.class_token = 1, c.qkv_bias = 1, c.pool = VIT_POOL_TOKEN, c.attn = VIT_ATTN_SDPA;
    for (int i = 0; i < 3; i++) c.std[i] = 0.5f;
    ck_assert_int_eq(vit_config_finish(&c), 0);
    double mac = 196.0 * 768 * 384 + 12 * (197.0 * 384 * 4608 + 2.0 * 197 * 197 * 384) + 384.0 * 1000;
    ck_assert_double_eq(mac, 4598882304.0);
    ck_assert_double_eq(vit_forward_flops(&c), 2 * mac);
    c.class_token = 0, c.pool = VIT_POOL_AVG; /* 196 tokens */
    ck_assert_int_eq(vit_config_finish(&c), 0);
    mac = 196.0 * 768 * 384 + 12 * (196.0 * 384 * 4608 + 2.0 * 196 * 196 * 384) + 384.0 * 1000;
    ck_assert_double_eq(vit_forward_flops(&c), 2 * mac);
}
END_TEST

Suite *vit_suite(void) {
    Suite *s = suite_create("vit");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_logits_match_pytorch, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_gradients_match_pytorch, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_modes_agree, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_thread_count_invariance, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_batch_independence, 0, N_FIXTURES);
    tcase_add_test(tc, test_backward_rejects_bad_input);
    tcase_add_test(tc, test_backward_rejects_more_threads);
    tcase_add_loop_test(tc, test_full_backward_without_dx, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_input_grad_arena, 0, N_FIXTURES);
    tcase_add_test(tc, test_quest_fixture_clamps);
    tcase_add_test(tc, test_forward_flops_vit_s);
    suite_add_tcase(s, tc);
    return s;
}
