/* corrupt.c — `questbench corrupt`: generate ImageNet-C style corrupted data, or evaluate models
 * on corruptions (in memory, or from a pre-generated tree), with CE / mCE (corruptions.md §5). */
#include "cmd.h"
#include "dataset.h"
#include "progress.h"
#include "../corruptions/corruptions.h"
#include "results.h"
#include "sharding.h"
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODELS 8

static void help(FILE *f) {
    fprintf(f,
            "usage: questbench corrupt --data DIR --save OUT [OPTIONS]          generate corrupted images\n"
            "       questbench corrupt --data DIR --model M [--model M2 ...]     evaluate, corrupting in memory\n"
            "       questbench corrupt --from C_DIR --model M [--data DIR]       evaluate a pre-generated tree\n"
            "The 19 ImageNet-C corruptions (hendrycks/robustness) at severities 1-5. Inputs are first brought to\n"
            "the preset's size as the reference did (imagenet: shorter side 256, PIL bilinear, centre crop 224;\n"
            "tinyimagenet: bilinear 64x64; cifar: 32x32 as is); an image already at that size is used as it is.\n"
            "options:\n"
            "  --data DIR          clean ImageFolder tree (DIR/<class>/<image>)\n"
            "  --labels FILE       flat --data folder with lines 'relative/path label'\n"
            "  --save OUT          write OUT/<corruption>/<severity>/<relative path> (ImageNet-C layout)\n"
            "  --format png|jpeg   saved image format (default png; ImageNet-C used jpeg --quality 85)\n"
            "  --quality Q         JPEG quality for --format jpeg (default 85)\n"
            "  --model [NAME=]FILE model to evaluate (repeatable, up to %d); NAME labels its result rows\n"
            "                      (default: the file name without folder and .safetensors)\n"
            "  --from C_DIR        evaluate C_DIR/<corruption>/<severity>/<class>/<image> as stored (no resize\n"
            "                      when the image is already the model's size); clean error needs --data\n"
            "  --preset P          imagenet (224, default), tinyimagenet (64) or cifar (32)\n"
            "  --corruptions LIST  names and groups: noise, blur, weather, digital, extra, common (the 15), all\n"
            "                      (default all)\n"
            "  --severities LIST   e.g. 1-5 (default), 3, 1,3,5\n"
            "  --seed N            random seed, recorded in every output (default 0)\n"
            "  --rng counter|numpy counter: stream keyed by (seed, image path, corruption, severity) (default);\n"
            "                      numpy: NumPy's RandomState seeded with --seed before every image, as the\n"
            "                      reference scripts' draws (equal to the reference for the same seed)\n"
            "  --frost-dir DIR     frost textures (default $QUESTBENCH_DATA/frost, else ./frost)\n"
            "  --subset FILE       only these relative paths    --limit N   the first N images\n"
            "  --batch B           images per step (default 32)\n"
            "  --shard K/N         only shard K of N of the images (after --subset/--limit: positions K, K+N,\n"
            "                      ...); rows are tagged with the shard, for questbench merge\n"
            "  --out FILE.csv      append result rows (the results schema, README \"Results\"): per model one\n"
            "                      kind=clean row and one kind=corruption row per (corruption, severity) with\n"
            "                      n and top-1 correct; CE, mCE and mean error come from `questbench report`\n"
            "  --resume            with --out: skip the (model, corruption, severity) rows already in it\n"
            "  --threads N         threads (default: all cores); results do not depend on it\n"
            "Model options (applied to every --model):\n" QB_MODEL_OPTIONS_HELP
            "exit codes: 0 ok, 1 internal, 2 usage (unknown corruption/group, severity outside 1-5, ...),\n"
            "  3 model, 4 data (unreadable image, image smaller than the preset, missing frost textures),\n"
            "  5 output not writable.\n",
            MAX_MODELS);
}

/* One evaluation tally per (model, corruption, severity); clean in slot [c = QB_N_CORRUPTIONS][0]. */
typedef struct {
    long n[QB_N_CORRUPTIONS + 1][6], correct[QB_N_CORRUPTIONS + 1][6];
} tally;

static int mkdirs(const char *path) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    return 0;
}

/* Save one corrupted image at OUT/<corruption>/<sev>/<rel>, with the extension matching the format. */
static int save_one(const char *root, const char *corr, int sev, const char *rel, const qb_image *img, int jpeg, int q) {
    char path[2048], dir[2048];
    snprintf(path, sizeof path, "%s/%s/%d/%s", root, corr, sev, rel);
    char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && dot > slash) *dot = 0;
    strncat(path, jpeg ? ".JPEG" : ".png", sizeof path - strlen(path) - 1);
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    if (mkdirs(dir)) return qb_error(QB_EXIT_IO, "%s: cannot create folder (%s)", dir, strerror(errno));
    return jpeg ? qb_image_save_jpeg(img, path, q) : qb_image_save_png(img, path);
}

/* S×S RGB8 → (3, size, size) model input: as is when the sizes agree (no second resize, §5.1),
 * else a plain resize with the model's filter. */
static int to_input(float *x, const qb_image *img, int size, qb_interp interp) {
    if (img->w == size && img->h == size) { qb_image_to_chw(x, img); return 0; }
    qb_image r;
    int rc = qb_resize(&r, img, size, size, interp);
    if (rc) return rc;
    qb_image_to_chw(x, &r);
    qb_image_free(&r);
    return 0;
}

static int top1(const float *z, int K) {
    int t = 0;
    for (int k = 1; k < K; k++) if (z[k] > z[t]) t = k;
    return t;
}

/* Forward a batch through every model and count top-1 hits into slot (c, s). */
static int eval_batch(qb_model *models, int n_models, float **xs, float *logits, const qb_image *imgs, const int *labels,
                      int nb, tally *t, int c, int s) {
    for (int m = 0; m < n_models; m++) {
        int S = models[m].vit.cfg.img_size, K = models[m].vit.cfg.classes;
        size_t per = (size_t)3 * S * S;
        int rc = 0;
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nb; i++) {
            int r = to_input(xs[m] + per * i, &imgs[i], S, models[m].interp);
            if (r) {
#pragma omp critical
                rc = r;
            }
        }
        if (rc) return rc;
        if ((rc = vit_forward(&models[m].vit, xs[m], nb, VIT_MODE_INFER, logits))) return rc;
        for (int i = 0; i < nb; i++) {
            t[m].n[c][s]++;
            t[m].correct[c][s] += top1(logits + (size_t)i * K, K) == labels[i];
        }
    }
    return 0;
}

int cmd_corrupt(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, n_models = 0, jpeg = 0;
    long batch = 32, limit = 0, seed = 0, quality = 85;
    const char *model_paths[MAX_MODELS];
    char model_names[MAX_MODELS][256];
    int resume = 0, shard_k = 0, shard_n = 0;
    const char *data = NULL, *labels = NULL, *subset = NULL, *out_path = NULL, *save = NULL, *from = NULL;
    const char *preset_s = "imagenet", *corr_s = "all", *sev_s = "1-5", *rng_s = "counter", *frost_dir = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (r < 0) return QB_EXIT_USAGE;
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        static const char *opts[] = {"--model", "--data", "--labels", "--subset", "--out", "--batch", "--limit",
                                     "--save", "--format", "--quality", "--from", "--preset", "--corruptions",
                                     "--severities", "--seed", "--rng", "--frost-dir", "--shard"};
        int k = -1;
        for (int j = 0; j < (int)(sizeof opts / sizeof opts[0]); j++) if (!strcmp(a, opts[j])) k = j;
        if (k < 0) { fprintf(stderr, "questbench corrupt: unknown %s '%s'\n", a[0] == '-' ? "option" : "argument", a); return QB_EXIT_USAGE; }
        if (i + 1 >= argc) { fprintf(stderr, "questbench corrupt: %s needs a value\n", a); return QB_EXIT_USAGE; }
        const char *v = argv[++i];
        switch (k) {
        case 0:
            if (n_models == MAX_MODELS) { fprintf(stderr, "questbench corrupt: at most %d --model\n", MAX_MODELS); return QB_EXIT_USAGE; }
            model_paths[n_models] = cmd_model_name(v, model_names[n_models], sizeof model_names[0]);
            n_models++;
            break;
        case 1: data = v; break;
        case 2: labels = v; break;
        case 3: subset = v; break;
        case 4: out_path = v; break;
        case 5: if (cmd_parse_int("--batch", v, 1, 4096, &batch)) return QB_EXIT_USAGE; break;
        case 6: if (cmd_parse_int("--limit", v, 1, 2000000000, &limit)) return QB_EXIT_USAGE; break;
        case 7: save = v; break;
        case 8:
            if (!strcmp(v, "png")) jpeg = 0;
            else if (!strcmp(v, "jpeg") || !strcmp(v, "jpg")) jpeg = 1;
            else { fprintf(stderr, "questbench corrupt: --format: expected png or jpeg, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 9: if (cmd_parse_int("--quality", v, 1, 100, &quality)) return QB_EXIT_USAGE; break;
        case 10: from = v; break;
        case 11: preset_s = v; break;
        case 12: corr_s = v; break;
        case 13: sev_s = v; break;
        case 14: if (cmd_parse_int("--seed", v, 0, 4294967295L, &seed)) return QB_EXIT_USAGE; break;
        case 15: rng_s = v; break;
        case 16: frost_dir = v; break;
        case 17: if (cmd_parse_shard(v, &shard_k, &shard_n)) return QB_EXIT_USAGE; break;
        }
    }
    /* ---- validate everything before any work ---- */
    qb_preset preset;
    int sel[QB_N_CORRUPTIONS], sev[6];
    if (qb_preset_parse(preset_s, &preset) || qb_corruption_select(corr_s, sel) || qb_severity_select(sev_s, sev))
        return cmd_fail(QB_EXIT_USAGE);
    qb_crng_kind rng_kind;
    if (!strcmp(rng_s, "counter")) rng_kind = QB_CRNG_COUNTER;
    else if (!strcmp(rng_s, "numpy")) rng_kind = QB_CRNG_NUMPY;
    else { fprintf(stderr, "questbench corrupt: --rng: expected counter or numpy, got '%s'\n", rng_s); return QB_EXIT_USAGE; }
    if (!save && !n_models) { fprintf(stderr, "questbench corrupt: nothing to do: give --save OUT and/or --model M\n"); return QB_EXIT_USAGE; }
    if (from && save) { fprintf(stderr, "questbench corrupt: --from evaluates a stored tree; it cannot be combined with --save\n"); return QB_EXIT_USAGE; }
    if (from && !n_models) { fprintf(stderr, "questbench corrupt: --from needs --model\n"); return QB_EXIT_USAGE; }
    if (!from && !data) { fprintf(stderr, "questbench corrupt: --data is required\n"); return QB_EXIT_USAGE; }
    if (out_path && !n_models) { fprintf(stderr, "questbench corrupt: --out needs --model (it holds evaluation results)\n"); return QB_EXIT_USAGE; }
    if (resume && !out_path) { fprintf(stderr, "questbench corrupt: --resume needs --out\n"); return QB_EXIT_USAGE; }
    if (out_path && qb_results_check_writable(out_path)) return cmd_fail(QB_EXIT_IO);
    int S = qb_preset_size(preset);
    cmd_set_threads(threads);

    int rc = 0;
    qb_frost frost = {0};
    int frost_idx = qb_corruption_find("frost");
    if (sel[frost_idx] && !from) {
        char buf[1100];
        if ((rc = qb_frost_load(&frost, frost_dir ? frost_dir : qb_frost_default_dir(buf, sizeof buf), preset))) return cmd_fail(rc);
    }
    if (save) {
        char probe[2100];
        snprintf(probe, sizeof probe, "%s/.questbench-write-test.%d", save, (int)getpid());
        FILE *f = mkdirs(save) ? NULL : fopen(probe, "w");
        if (!f) { qb_frost_free(&frost); return cmd_fail(qb_error(QB_EXIT_IO, "%s: output folder is not writable (%s)", save, strerror(errno))); }
        fclose(f);
        unlink(probe);
    }
    /* --resume: what the results file already holds */
    qb_results prev = {0};
    if (out_path && resume && access(out_path, F_OK) == 0 && (rc = qb_results_read(&prev, out_path))) {
        qb_frost_free(&frost);
        return cmd_fail(rc);
    }
    qb_dataset ds = {0};
    int have_ds = 0;
    if (data) {
        if ((rc = qb_dataset_open(&ds, data, labels, subset, (int)limit))) { cmd_fail(rc); goto cleanup_early; }
        have_ds = 1;
        if ((rc = cmd_apply_shard(&ds, shard_k, shard_n))) { qb_dataset_free(&ds); goto cleanup_early; }
    }
    qb_model models[MAX_MODELS];
    int loaded = 0;
    for (; loaded < n_models; loaded++)
        if ((rc = cmd_load_model(&models[loaded], model_paths[loaded], &ov, 0))) goto cleanup;
    /* one row template per model; done[m][c][s]: already in --out (slot c = QB_N_CORRUPTIONS: clean) */
    static qb_result tmpl[MAX_MODELS];
    static unsigned char done[MAX_MODELS][QB_N_CORRUPTIONS + 1][6];
    memset(done, 0, sizeof done);
    for (int m = 0; m < n_models && out_path; m++) {
        qb_result *r = &tmpl[m];
        memset(r, 0, sizeof *r);
        qb_shard_run_id(r->run_id, sizeof r->run_id, "corrupt", shard_k, shard_n);
        snprintf(r->model, sizeof r->model, "%s", model_names[m]);
        if ((rc = qb_sha256_file(model_paths[m], r->model_sha256))) { cmd_fail(rc); goto cleanup; }
        snprintf(r->attention, sizeof r->attention, "%s", vit_attn_name(models[m].vit.cfg.attn));
        /* --labels applies to --data only (the stored tree is an ImageFolder) */
        if ((rc = cmd_dataset_id(r->dataset, sizeof r->dataset, from ? from : data, from ? NULL : labels, subset, limit, &ov))) {
            cmd_fail(rc);
            goto cleanup;
        }
        snprintf(r->preset, sizeof r->preset, "%s", preset_s);
        snprintf(r->metric, sizeof r->metric, "top1");
        r->seed = (uint64_t)seed;
        for (int c = 0; c <= QB_N_CORRUPTIONS && prev.n; c++)
            for (int s = c == QB_N_CORRUPTIONS ? 0 : 1; s <= (c == QB_N_CORRUPTIONS ? 0 : 5); s++) {
                qb_result q = *r;
                snprintf(q.kind, sizeof q.kind, "%s", c == QB_N_CORRUPTIONS ? "clean" : "corruption");
                snprintf(q.corruption, sizeof q.corruption, "%s", c == QB_N_CORRUPTIONS ? "" : qb_corruptions[c].name);
                q.severity = s;
                done[m][c][s] = (unsigned char)qb_results_has(&prev, &q);
            }
    }
    if (have_ds && n_models)
        for (int i = 0; i < ds.n; i++) {
            if (ds.items[i].label < 0 || ds.items[i].label >= models[0].vit.cfg.classes) {
                rc = cmd_fail(qb_error(QB_EXIT_DATA, "%s: label %d is outside the model's %d classes", ds.items[i].rel,
                                       ds.items[i].label, models[0].vit.cfg.classes));
                goto cleanup;
            }
        }

    /* ---- work ---- */
    static unsigned char sel_skip[QB_N_CORRUPTIONS][6];
    memset(sel_skip, 0, sizeof sel_skip);
    {
        tally *t = calloc((size_t)(n_models ? n_models : 1), sizeof(tally));
        float *xs[MAX_MODELS] = {0}, *logits = NULL;
        int maxK = 1;
        for (int m = 0; m < n_models; m++) {
            int ms = models[m].vit.cfg.img_size;
            xs[m] = qb_malloc((size_t)batch * 3 * ms * ms * sizeof(float));
            if (models[m].vit.cfg.classes > maxK) maxK = models[m].vit.cfg.classes;
        }
        logits = qb_malloc((size_t)batch * maxK * sizeof(float));
        /* cor[s·batch + i]: image i at severity s (1..5): a corruption's severities are made in one call */
        qb_image *clean = calloc((size_t)batch, sizeof(qb_image)), *cor = calloc((size_t)batch * 6, sizeof(qb_image));
        int *lab = calloc((size_t)batch, sizeof(int)), *errs = calloc((size_t)batch, sizeof(int));
        char (*errmsg)[512] = calloc((size_t)batch, 512);
        int nsel = 0, skipped = 0;
        /* a (corruption, severity) is computed when some model still needs it; clean likewise */
        for (int c = 0; c < QB_N_CORRUPTIONS; c++)
            for (int s = 1; s <= 5; s++) {
                if (!sel[c] || !sev[s]) continue;
                int need = save || !n_models;
                for (int m = 0; m < n_models; m++) need |= !done[m][c][s];
                if (need) nsel++;
                else sel_skip[c][s] = 1, skipped++;
            }
        int need_clean = 0;
        for (int m = 0; m < n_models; m++) need_clean |= !done[m][QB_N_CORRUPTIONS][0];
        if (skipped) fprintf(stderr, "questbench corrupt: --resume: %d corruption-severities already in %s for every model\n", skipped, out_path);
        qb_corrupt_ctx ctx = {preset, S, &frost};
        qb_progress pb;
        double t0 = qb_now();
        for (int i = batch; i < 6 * batch && !from && !rc; i++) /* the selected severities only */
            if (sev[i / batch]) {
                cor[i].w = cor[i].h = S;
                if (!(cor[i].rgb = qb_malloc((size_t)S * S * 3))) rc = QB_EXIT_FAIL;
            }
        if (have_ds && !from) {
            qb_progress_start(&pb, save && !n_models ? "corrupt" : "eval", (long)ds.n * nsel);
            for (int start = 0; start < ds.n && !rc; start += (int)batch) {
                int nb = ds.n - start < batch ? ds.n - start : (int)batch;
                /* decode and bring to the preset's size, in parallel; first failure (lowest index) wins */
#pragma omp parallel for schedule(dynamic)
                for (int i = 0; i < nb; i++) {
                    qb_image raw;
                    const qb_sample *smp = &ds.items[start + i];
                    errs[i] = qb_image_load(&raw, smp->path);
                    if (!errs[i]) {
                        errs[i] = qb_corrupt_prepare(&clean[i], &raw, preset, smp->rel);
                        qb_image_free(&raw);
                    }
                    if (errs[i]) snprintf(errmsg[i], 512, "%s", qb_last_error());
                    lab[i] = smp->label;
                }
                for (int i = 0; i < nb && !rc; i++)
                    if (errs[i]) rc = qb_error(errs[i], "%s", errmsg[i]);
                if (!rc && n_models && need_clean && (rc = eval_batch(models, n_models, xs, logits, clean, lab, nb, t, QB_N_CORRUPTIONS, 0))) {}
                for (int c = 0; c < QB_N_CORRUPTIONS && !rc; c++) {
                    unsigned mask = 0;
                    for (int s = 1; s <= 5; s++)
                        if (sel[c] && sev[s] && !sel_skip[c][s]) mask |= 1u << s;
                    if (!mask) continue;
#pragma omp parallel for schedule(dynamic)
                    for (int i = 0; i < nb; i++) {
                        const qb_sample *smp = &ds.items[start + i];
                        uint8_t *o[6] = {NULL};
                        for (int s = 1; s <= 5; s++) o[s] = cor[s * batch + i].rgb;
                        errs[i] = qb_corrupt_sevs(o, clean[i].rgb, c, mask, rng_kind, (uint64_t)seed, qb_image_id(smp->rel), &ctx);
                        for (int s = 1; s <= 5 && save && !errs[i]; s++)
                            if (mask >> s & 1)
                                errs[i] = save_one(save, qb_corruptions[c].name, s, smp->rel, &cor[s * batch + i], jpeg, (int)quality);
                        if (errs[i]) snprintf(errmsg[i], 512, "%s", qb_last_error());
                    }
                    for (int i = 0; i < nb && !rc; i++)
                        if (errs[i]) rc = qb_error(errs[i], "%s", errmsg[i]);
                    for (int s = 1; s <= 5 && !rc; s++) {
                        if (!(mask >> s & 1)) continue;
                        if (n_models) rc = eval_batch(models, n_models, xs, logits, cor + s * batch, lab, nb, t, c, s);
                        qb_progress_update(&pb, pb.done + nb);
                    }
                }
                for (int i = 0; i < nb; i++) qb_image_free(&clean[i]);
            }
            qb_progress_finish(&pb);
        } else if (from) {
            /* clean error from --data (as prepared for the preset), if given */
            if (have_ds && need_clean) {
                for (int start = 0; start < ds.n && !rc; start += (int)batch) {
                    int nb = ds.n - start < batch ? ds.n - start : (int)batch;
#pragma omp parallel for schedule(dynamic)
                    for (int i = 0; i < nb; i++) {
                        qb_image raw;
                        errs[i] = qb_image_load(&raw, ds.items[start + i].path);
                        if (!errs[i]) { errs[i] = qb_corrupt_prepare(&clean[i], &raw, preset, ds.items[start + i].rel); qb_image_free(&raw); }
                        if (errs[i]) snprintf(errmsg[i], 512, "%s", qb_last_error());
                        lab[i] = ds.items[start + i].label;
                    }
                    for (int i = 0; i < nb && !rc; i++) if (errs[i]) rc = qb_error(errs[i], "%s", errmsg[i]);
                    if (!rc) rc = eval_batch(models, n_models, xs, logits, clean, lab, nb, t, QB_N_CORRUPTIONS, 0);
                    for (int i = 0; i < nb; i++) qb_image_free(&clean[i]);
                }
            }
            for (int c = 0; c < QB_N_CORRUPTIONS && !rc; c++)
                for (int s = 1; s <= 5 && !rc; s++) {
                    if (!sel[c] || !sev[s] || sel_skip[c][s]) continue;
                    char dir[2048];
                    snprintf(dir, sizeof dir, "%s/%s/%d", from, qb_corruptions[c].name, s);
                    qb_dataset cd;
                    if ((rc = qb_dataset_open(&cd, dir, NULL, subset, (int)limit))) break;
                    if (shard_n && (rc = qb_dataset_shard(&cd, shard_k, shard_n))) { qb_dataset_free(&cd); break; }
                    for (int start = 0; start < cd.n && !rc; start += (int)batch) {
                        int nb = cd.n - start < batch ? cd.n - start : (int)batch;
#pragma omp parallel for schedule(dynamic)
                        for (int i = 0; i < nb; i++) {
                            errs[i] = qb_image_load(&clean[i], cd.items[start + i].path);
                            if (errs[i]) snprintf(errmsg[i], 512, "%s", qb_last_error());
                            lab[i] = cd.items[start + i].label;
                        }
                        for (int i = 0; i < nb && !rc; i++) if (errs[i]) rc = qb_error(errs[i], "%s", errmsg[i]);
                        if (!rc) rc = eval_batch(models, n_models, xs, logits, clean, lab, nb, t, c, s);
                        for (int i = 0; i < nb; i++) qb_image_free(&clean[i]);
                    }
                    qb_dataset_free(&cd);
                }
        }
        double el = qb_now() - t0;
        if (rc) cmd_fail(rc);
        if (!rc && save && !n_models) {
            long files = (long)ds.n * nsel;
            printf("wrote %ld images (%d corruption-severities x %d images) to %s in %.1f s (%.1f images/s), seed %ld, rng %s\n",
                   files, nsel, ds.n, save, el, files / (el > 0 ? el : 1), seed, rng_s);
        }
        /* ---- result rows (appended in one write: all or none), then the stdout table ---- */
        if (!rc && out_path) {
            qb_result *rows = calloc((size_t)n_models * (QB_N_CORRUPTIONS * 5 + 1), sizeof *rows);
            int nr = 0;
            if (!rows) rc = cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory"));
            for (int m = 0; m < n_models && rows; m++)
                for (int ci = -1; ci < QB_N_CORRUPTIONS; ci++) /* clean first, then registry order */
                    for (int s = 0, c = ci < 0 ? QB_N_CORRUPTIONS : ci; s <= 5; s++) {
                        if (!t[m].n[c][s] || done[m][c][s]) continue;
                        qb_result *r = &rows[nr++];
                        *r = tmpl[m];
                        snprintf(r->kind, sizeof r->kind, "%s", c == QB_N_CORRUPTIONS ? "clean" : "corruption");
                        snprintf(r->corruption, sizeof r->corruption, "%s", c == QB_N_CORRUPTIONS ? "" : qb_corruptions[c].name);
                        r->severity = s;
                        r->n = t[m].n[c][s], r->correct = t[m].correct[c][s];
                        qb_result_finish(r);
                    }
            if (rows && nr && (rc = qb_results_append(out_path, rows, nr))) cmd_fail(rc);
            free(rows);
        }
        for (int m = 0; m < n_models && !rc; m++) {
            tally *tm = &t[m];
            const char *att = vit_attn_name(models[m].vit.cfg.attn);
            double clean_err = tm->n[QB_N_CORRUPTIONS][0] ? 1.0 - (double)tm->correct[QB_N_CORRUPTIONS][0] / tm->n[QB_N_CORRUPTIONS][0] : NAN;
            printf("model: %s = %s (%s)\npreset: %s  seed: %ld  rng: %s\n", model_names[m], model_paths[m], att, preset_s, seed, rng_s);
            printf("%-18s %7s %7s %7s %7s %7s %7s %7s %7s\n", "corruption", "sev1", "sev2", "sev3", "sev4", "sev5", "mean",
                   preset == QB_PRESET_IMAGENET ? "CE" : "", preset == QB_PRESET_IMAGENET ? "relCE" : "");
            double ce_sum = 0, rce_sum = 0, err_sum = 0;
            int ce_n = 0, rce_n = 0, err_n = 0, common_complete = 1;
            for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
                if (!sel[c]) { if (c < QB_N_COMMON) common_complete = 0; continue; }
                double e[6] = {0}, se = 0;
                int full = 1, ns = 0;
                printf("%-18s", qb_corruptions[c].name);
                for (int s = 1; s <= 5; s++) {
                    if (!tm->n[c][s]) { full = 0; printf(" %7s", "-"); continue; }
                    e[s] = 1.0 - (double)tm->correct[c][s] / tm->n[c][s];
                    printf(" %6.2f%%", 100 * e[s]);
                    se += e[s], ns++;
                    if (c < QB_N_COMMON) err_sum += e[s], err_n++;
                }
                if (!full && c < QB_N_COMMON) common_complete = 0;
                if (ns) printf(" %6.2f%%", 100 * se / ns);
                else printf(" %7s", "-");
                if (full && preset == QB_PRESET_IMAGENET) {
                    double ae = 0, ad = 0;
                    for (int s = 1; s <= 5; s++) ae += qb_alexnet_err[c][s - 1], ad += qb_alexnet_err[c][s - 1] - qb_alexnet_clean_err;
                    double ce = se / ae;
                    printf(" %6.1f%%", 100 * ce);
                    if (c < QB_N_COMMON) ce_sum += ce, ce_n++;
                    if (!isnan(clean_err)) {
                        double rce = (se - 5 * clean_err) / ad;
                        printf(" %6.1f%%", 100 * rce);
                        if (c < QB_N_COMMON) rce_sum += rce, rce_n++;
                    }
                }
                printf("\n");
            }
            if (!isnan(clean_err)) printf("clean error: %.2f%% (%ld images)\n", 100 * clean_err, tm->n[QB_N_CORRUPTIONS][0]);
            if (err_n) {
                printf("mean error (unnormalised, %d common corruption-severities): %.2f%%\n", err_n, 100 * err_sum / err_n);
            }
            if (preset == QB_PRESET_IMAGENET && common_complete && ce_n == QB_N_COMMON) {
                printf("mCE (AlexNet-normalised, 15 corruptions): %.2f%%\n", 100 * ce_sum / ce_n);
                if (rce_n == QB_N_COMMON) {
                    printf("relative mCE: %.2f%%\n", 100 * rce_sum / rce_n);
                }
            } else if (preset == QB_PRESET_IMAGENET)
                printf("mCE: not reported (needs all 15 common corruptions at severities 1-5)\n");
            else
                printf("mCE: no AlexNet baseline for the %s preset; report the unnormalised mean error\n", preset_s);
        }
        for (int m = 0; m < MAX_MODELS; m++) free(xs[m]);
        for (int i = 0; i < 6 * batch; i++) free(cor[i].rgb);
        free(t), free(logits), free(clean), free(cor), free(lab), free(errs), free(errmsg);
    }
cleanup:
    for (int m = 0; m < loaded; m++) qb_model_free(&models[m]);
    if (have_ds) qb_dataset_free(&ds);
cleanup_early:
    qb_frost_free(&frost);
    qb_results_free(&prev);
    return rc;
}
