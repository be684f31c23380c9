/* eval.c — `questbench eval`: top-1/top-5 accuracy and throughput of a model on a data tree. */
#include "cmd.h"
#include "dataset.h"
#include "loader.h"
#include "progress.h"
#include "results.h"
#include "sharding.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench eval --model [NAME=]M.safetensors --data DIR [OPTIONS]\n"
               "Top-1/top-5 accuracy and images/s on an ImageFolder tree (DIR/<class>/<image>, classes in\n"
               "sorted order) or a flat folder with --labels.\n"
               "options:\n"
               "  --model FILE     timm ViT checkpoint (safetensors)\n"
               "  --data DIR       ImageFolder root, or a flat folder with --labels\n"
               "  --labels FILE    lines 'relative/path label' (ImageNet val ground truth)\n"
               "  --subset FILE    evaluate only these relative paths, in this order\n"
               "  --limit N        the first N images\n"
               "  --shard K/N      only shard K of N of the images (after --subset/--limit: those at positions\n"
               "                   K, K+N, K+2N, ...); the row is tagged with the shard, for questbench merge\n"
               "  --batch B        images per forward pass (default 16)\n"
               "  --skip-bad       skip images that fail to load (counted and named on stderr);\n"
               "                   by default the first one stops the run with exit 4\n"
               "  --out FILE.csv   append the clean-accuracy row to a results file (README \"Results\")\n"
               "  --resume         with --out: do nothing if the row is already there\n"
               "  --seed S         recorded in the row (default 0)\n"
               "  --per-image F.csv  per-image rows: path,label,top1,prob,correct1,correct5 (written atomically)\n"
               QB_MODEL_OPTIONS_HELP);
}

int cmd_eval(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, skip_bad = 0, resume = 0, shard_k = 0, shard_n = 0;
    long batch = 16, limit = 0, seed = 0;
    const char *model_arg = NULL, *data = NULL, *labels = NULL, *subset = NULL, *out_path = NULL, *results_path = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (r < 0) return QB_EXIT_USAGE;
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
        if (!strcmp(a, "--skip-bad")) { skip_bad = 1; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        const char *opts[] = {"--model", "--data", "--labels", "--subset", "--per-image", "--batch", "--limit", "--out", "--seed", "--shard"};
        int k = -1;
        for (int j = 0; j < 10; j++) if (!strcmp(a, opts[j])) k = j;
        if (k < 0) { fprintf(stderr, "questbench eval: unknown %s '%s'\n", a[0] == '-' ? "option" : "argument", a); return QB_EXIT_USAGE; }
        if (i + 1 >= argc) { fprintf(stderr, "questbench eval: %s needs a value\n", a); return QB_EXIT_USAGE; }
        const char *v = argv[++i];
        switch (k) {
        case 0: model_arg = v; break;
        case 1: data = v; break;
        case 2: labels = v; break;
        case 3: subset = v; break;
        case 4: out_path = v; break;
        case 5: if (cmd_parse_int("--batch", v, 1, 4096, &batch)) return QB_EXIT_USAGE; break;
        case 6: if (cmd_parse_int("--limit", v, 1, 2000000000, &limit)) return QB_EXIT_USAGE; break;
        case 7: results_path = v; break;
        case 8: if (cmd_parse_int("--seed", v, 0, 2000000000, &seed)) return QB_EXIT_USAGE; break;
        case 9: if (cmd_parse_shard(v, &shard_k, &shard_n)) return QB_EXIT_USAGE; break;
        }
    }
    if (!model_arg || !data) {
        fprintf(stderr, "questbench eval: %s is required\n", !model_arg ? "--model" : "--data");
        return QB_EXIT_USAGE;
    }
    if (resume && !results_path) {
        fprintf(stderr, "questbench eval: --resume needs --out\n");
        return QB_EXIT_USAGE;
    }
    char model_name[256];
    const char *model_path = cmd_model_name(model_arg, model_name, sizeof model_name);
    int rc0 = results_path ? qb_results_check_writable(results_path) : 0;
    if (rc0) return cmd_fail(rc0);
    cmd_set_threads(threads);
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, data, labels, subset, (int)limit);
    if (rc) return cmd_fail(rc);
    if ((rc = cmd_apply_shard(&ds, shard_k, shard_n))) { qb_dataset_free(&ds); return rc; }
    qb_model m;
    if ((rc = cmd_load_model(&m, model_path, &ov, 0))) { qb_dataset_free(&ds); return rc; }
    const vit_config *c = &m.vit.cfg;
    int K = c->classes, S = c->img_size, n = ds.n;
    for (int i = 0; i < n; i++)
        if (ds.items[i].label < 0 || ds.items[i].label >= K) {
            rc = cmd_fail(qb_error(QB_EXIT_DATA, "%s: label %d is outside the model's %d classes", ds.items[i].rel,
                                   ds.items[i].label, K));
            qb_dataset_free(&ds);
            qb_model_free(&m);
            return rc;
        }

    qb_result row;
    memset(&row, 0, sizeof row);
    qb_shard_run_id(row.run_id, sizeof row.run_id, "eval", shard_k, shard_n);
    snprintf(row.model, sizeof row.model, "%s", model_name);
    snprintf(row.attention, sizeof row.attention, "%s", vit_attn_name(c->attn));
    if ((rc = cmd_dataset_id(row.dataset, sizeof row.dataset, data, labels, subset, limit, &ov))) {
        cmd_fail(rc);
        qb_dataset_free(&ds);
        qb_model_free(&m);
        return rc;
    }
    snprintf(row.kind, sizeof row.kind, "clean");
    row.seed = (uint64_t)seed;
    if (results_path && resume && access(results_path, F_OK) == 0) {
        qb_results prev = {0};
        if ((rc = qb_results_read(&prev, results_path))) { cmd_fail(rc); qb_dataset_free(&ds); qb_model_free(&m); return rc; }
        int done_already = qb_results_has(&prev, &row);
        qb_results_free(&prev);
        if (done_already) {
            fprintf(stderr, "questbench: %s: clean accuracy of %s already recorded (--resume)\n", results_path, model_name);
            qb_dataset_free(&ds);
            qb_model_free(&m);
            return 0;
        }
    }
    if (results_path && (rc = qb_sha256_file(model_path, row.model_sha256))) { cmd_fail(rc); qb_dataset_free(&ds); qb_model_free(&m); return rc; }
    FILE *out = NULL;
    char tmp_path[1100] = "";
    if (out_path) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", out_path, (int)getpid());
        out = fopen(tmp_path, "w");
        if (!out) {
            rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot write: %s", out_path, strerror(errno)));
            qb_dataset_free(&ds);
            qb_model_free(&m);
            return rc;
        }
        fprintf(out, "path,label,top1,prob,correct1,correct5\n");
    }
    float *x = qb_malloc((size_t)batch * 3 * S * S * sizeof(float));
    float *logits = qb_malloc((size_t)batch * K * sizeof(float));
    const char **paths = calloc((size_t)batch, sizeof(char *));
    int *idx = calloc((size_t)batch, sizeof(int));
    long correct1 = 0, correct5 = 0, done = 0, skipped = 0;
    double t_fwd = 0, t0 = qb_now();
    qb_progress pb;
    qb_progress_start(&pb, "eval", n);
    int next = 0;
    while (next < n && !rc) {
        /* fill a batch, skipping unreadable images when asked to */
        int nb = 0;
        while (nb < batch && next < n) {
            idx[nb] = next;
            paths[nb] = ds.items[next].path;
            nb++, next++;
        }
        int failed;
        while ((rc = qb_load_batch(x, paths, nb, S, m.crop_pct, m.interp, &failed)) && skip_bad && rc == QB_EXIT_DATA) {
            fprintf(stderr, "questbench: skipped: %s\n", qb_last_error());
            skipped++;
            memmove(paths + failed, paths + failed + 1, (size_t)(nb - failed - 1) * sizeof(char *));
            memmove(idx + failed, idx + failed + 1, (size_t)(nb - failed - 1) * sizeof(int));
            nb--;
            rc = 0;
        }
        if (rc) { cmd_fail(rc); break; }
        if (nb == 0) continue;
        double tf = qb_now();
        if ((rc = vit_forward(&m.vit, x, nb, VIT_MODE_INFER, logits))) { cmd_fail(rc); break; }
        t_fwd += qb_now() - tf;
        for (int j = 0; j < nb; j++) {
            const float *z = logits + (size_t)j * K;
            int y = ds.items[idx[j]].label, top = 0, rank = 0;
            for (int k = 1; k < K; k++) if (z[k] > z[top]) top = k;
            /* rank of the true class: classes scoring strictly higher, ties broken by index */
            for (int k = 0; k < K; k++) rank += z[k] > z[y] || (z[k] == z[y] && k < y);
            correct1 += top == y;
            correct5 += rank < 5;
            if (out) {
                double s = 0;
                for (int k = 0; k < K; k++) s += exp((double)z[k] - z[top]);
                fprintf(out, "%s,%d,%d,%.6f,%d,%d\n", ds.items[idx[j]].rel, y, top, 1.0 / s, top == y, rank < 5);
            }
        }
        done += nb;
        qb_progress_update(&pb, done + skipped);
    }
    qb_progress_finish(&pb);
    double el = qb_now() - t0;
    /* a measurement of no image is not a 0 % accuracy: nothing is written */
    if (!rc && done == 0)
        rc = cmd_fail(qb_error(QB_EXIT_DATA, "%s: none of the %d image(s) could be read (--skip-bad skipped them all)",
                               data, n));
    if (!rc && out) {
        if (fflush(out) || fsync(fileno(out)) || fclose(out) || rename(tmp_path, out_path)) {
            rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: write failed", out_path));
            unlink(tmp_path);
        }
        out = NULL;
    }
    if (out) { fclose(out); unlink(tmp_path); }
    if (!rc && results_path) {
        row.n = done, row.correct = correct1;
        qb_result_finish(&row);
        if ((rc = qb_results_append(results_path, &row, 1))) cmd_fail(rc);
    }
    if (!rc) {
        printf("model: %s\ndata: %s\nimages: %ld\n", model_path, data, done);
        if (skipped) printf("skipped: %ld\n", skipped);
        printf("top1: %.2f%% (%ld/%ld)\ntop5: %.2f%% (%ld/%ld)\n", done ? 100.0 * correct1 / done : 0, correct1, done,
               done ? 100.0 * correct5 / done : 0, correct5, done);
        printf("images_per_s: %.2f (forward only: %.2f)\n", done / el, t_fwd > 0 ? done / t_fwd : 0);
    }
    free(x), free(logits), free(paths), free(idx);
    qb_dataset_free(&ds);
    qb_model_free(&m);
    return rc;
}
