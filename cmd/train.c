/* train.c — `questbench train --config FILE.yaml [--resume]`: train a ViT with the engine's
 * backward pass, AdamW and a warmup + cosine schedule (engine.md §5); a checkpoint and a test
 * evaluation after every epoch; per-step CSV log with per-layer attention statistics. */
#include "cmd.h"
#include "loss.h"
#include "progress.h"
#include "train.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench train --config FILE.yaml [--resume] [--stop-after E] [--threads N] [--dry-run]\n"
               "Trains a ViT from a config (see configs/train-cifar10-*.yaml) and writes to its output folder:\n"
               "  model.safetensors        the model after the last completed epoch (loads in eval/predict/info)\n"
               "  model.optim.safetensors  AdamW state (m, v, step, epoch) for --resume\n"
               "  train_log.csv            per step: loss, lr, grad norm; every log_every steps per layer\n"
               "                           the mean/max query and key norm, max attention logit, entropy\n"
               "  epochs.csv               per epoch: train loss and accuracy, test top-1, images/s\n"
               "options:\n"
               "  --config FILE    the training config (YAML)\n"
               "  --resume         continue from the output folder's checkpoint (bit-identical to an\n"
               "                   uninterrupted run)\n"
               "  --stop-after E   stop once E epochs are complete (the schedule still spans all epochs)\n"
               "  --threads N      threads (default: the config's, else all cores)\n"
               "  --dry-run        check the config and print what would be trained\n");
}

/* keep the header and the rows whose first field is ≤ keep (a resumed run rewrites the tail) */
static int truncate_log(const char *path, long keep) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) { fclose(f); return qb_error(QB_EXIT_IO, "%s: cannot write: %s", tmp, strerror(errno)); }
    char *line = NULL;
    size_t cap = 0;
    int first = 1;
    while (getline(&line, &cap, f) > 0) {
        if (first || strtol(line, NULL, 10) <= keep) fputs(line, o);
        first = 0;
    }
    free(line);
    fclose(f);
    if (fclose(o) || rename(tmp, path)) return qb_error(QB_EXIT_IO, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

static FILE *open_log(const char *path, int append, const char *header_fmt, int L) {
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) return NULL;
    if (!append || ftell(f) == 0) {
        fputs(header_fmt, f);
        for (int l = 0; l < L; l++)
            fprintf(f, ",l%d_q_mean,l%d_q_max,l%d_k_mean,l%d_k_max,l%d_logit_max,l%d_entropy", l, l, l, l, l, l);
        fputc('\n', f);
    }
    return f;
}

/* top-1 accuracy (%) on the test split, inference mode, padded last batch */
static int evaluate(vit_model *m, const qb_train_set *test, int EB, float *x, double *top1) {
    const int K = m->cfg.classes;
    const size_t img = (size_t)3 * test->size * test->size;
    long correct = 0;
    for (int s = 0; s < test->n; s += EB) {
        int r = test->n - s < EB ? test->n - s : EB;
        qb_eval_batch(x, test, s, r);
        if (r < EB) memset(x + (size_t)r * img, 0, (size_t)(EB - r) * img * sizeof(float));
        int rc = vit_forward(m, x, EB, VIT_MODE_INFER, NULL);
        if (rc) return rc;
        for (int b = 0; b < r; b++) {
            const float *z = m->acts.logits + (size_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            correct += best == test->labels[s + b];
        }
    }
    *top1 = test->n ? 100.0 * correct / test->n : 0.0;
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *cfg_path = NULL;
    int resume = 0, dry = 0;
    long stop_after = 0, threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--dry-run")) { dry = 1; continue; }
        int k = !strcmp(a, "--config") ? 0 : !strcmp(a, "--stop-after") ? 1 : !strcmp(a, "--threads") ? 2 : -1;
        if (k < 0) { fprintf(stderr, "questbench train: unknown %s '%s'\n", a[0] == '-' ? "option" : "argument", a); return QB_EXIT_USAGE; }
        if (i + 1 >= argc) { fprintf(stderr, "questbench train: %s needs a value\n", a); return QB_EXIT_USAGE; }
        const char *v = argv[++i];
        if (k == 0) cfg_path = v;
        else if (k == 1 && cmd_parse_int("--stop-after", v, 1, 1000000, &stop_after)) return QB_EXIT_USAGE;
        else if (k == 2 && cmd_parse_int("--threads", v, 0, 1024, &threads)) return QB_EXIT_USAGE;
    }
    if (!cfg_path) { fprintf(stderr, "questbench train: --config is required\n"); return QB_EXIT_USAGE; }
    qb_train_config c;
    int rc = qb_train_config_load(&c, cfg_path);
    if (rc) return cmd_fail(rc);
    cmd_set_threads(threads >= 0 ? (int)threads : c.threads);
    if (dry) {
        vit_config v;
        vit_model dm;
        if ((rc = qb_train_vit_config(&c, &v)) || (rc = vit_init(&dm, &v))) return cmd_fail(rc ? rc : QB_EXIT_FAIL);
        printf("%s: ViT img %d patch %d dim %d depth %d heads %d mlp %d classes %d, %s attention, %zu parameters\n"
               "data %s (%s), %d epochs of batch %d, lr %g (warmup %g epochs from %g, cosine to %g per %s), "
               "output %s\n",
               cfg_path, v.img_size, v.patch, v.dim, v.depth, v.heads, v.mlp_dim, v.classes, vit_attn_name(v.attn),
               dm.num_params, c.data, c.format == QB_FORMAT_FOLDER ? "folder" : "cifar-binary", c.epochs, c.batch,
               c.lr, c.warmup_epochs, c.warmup_lr, c.min_lr, c.per_epoch_schedule ? "epoch" : "iteration", c.output);
        vit_free(&dm);
        return 0;
    }

    char model_path[1100], optim_path[1100], log_path[1100], ep_path[1100];
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", c.output);
    snprintf(optim_path, sizeof optim_path, "%s/model.optim.safetensors", c.output);
    snprintf(log_path, sizeof log_path, "%s/train_log.csv", c.output);
    snprintf(ep_path, sizeof ep_path, "%s/epochs.csv", c.output);
    if (resume && access(model_path, F_OK))
        return cmd_fail(qb_error(QB_EXIT_MODEL, "%s: nothing to resume (no checkpoint)", model_path));
    if (!resume && !access(model_path, F_OK))
        return cmd_fail(qb_error(QB_EXIT_USAGE, "%s: a checkpoint is already there; pass --resume to continue it or "
                                                "remove the folder", model_path));
    /* create the output folder and its parents (mkdir -p) */
    char dir[sizeof c.output];
    snprintf(dir, sizeof dir, "%s", c.output);
    for (char *q = dir + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(dir, 0755);
            *q = '/';
        }
    if (mkdir(c.output, 0755) && errno != EEXIST)
        return cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot create: %s", c.output, strerror(errno)));

    vit_config vc;
    vit_model m;
    qb_adamw opt = {0};
    qb_train_set train = {0}, test = {0};
    float *x = NULL, *dlogits = NULL, *losses = NULL;
    int *y = NULL, *perm = NULL;
    double *stats = NULL;
    FILE *log = NULL, *eplog = NULL;
    if ((rc = qb_train_vit_config(&c, &vc)) || (rc = vit_init(&m, &vc))) return cmd_fail(rc ? rc : QB_EXIT_FAIL);
    if ((rc = qb_adamw_init(&opt, m.num_params))) { vit_free(&m); return cmd_fail(rc); }
    qb_train_state st = {0, 0, -1, 0, 0};
    if (resume) {
        if ((rc = qb_train_load(model_path, optim_path, &m, &opt, &c, &st))) goto fail;
        if (st.config_changed)
            fprintf(stderr, "questbench train: note: %s differs from the config the checkpoint was trained with; "
                            "the resumed run is not the uninterrupted run of either\n", cfg_path);
        if (st.epoch >= c.epochs) {
            printf("questbench train: %s already has all %d epochs\n", model_path, c.epochs);
            goto done;
        }
    } else {
        qb_vit_init_timm(&m, c.seed);
    }
    double t_load = qb_now();
    if ((rc = qb_train_data_load(&train, &test, c.data, c.format, c.img_size, c.classes, c.train_limit, c.test_limit)))
        goto fail;
    fprintf(stderr, "questbench train: %d training and %d test images of %d classes from %s (%.1f s); %zu parameters, %s attention\n",
            train.n, test.n, train.classes, c.data, qb_now() - t_load, m.num_params, vit_attn_name(vc.attn));
    const int B = c.batch, L = vc.depth, K = vc.classes, S = vc.img_size;
    const long spe = train.n / B;
    if (spe < 1) { rc = qb_error(QB_EXIT_USAGE, "%s: batch %d exceeds the %d training images", cfg_path, B, train.n); goto fail; }
    const int EB = c.eval_batch < test.n ? c.eval_batch : (test.n > 0 ? test.n : 1);
    size_t xn = (size_t)(B > EB ? B : EB) * 3 * S * S;
    x = qb_malloc(xn * sizeof(float));
    dlogits = qb_malloc((size_t)B * K * sizeof(float));
    losses = qb_malloc((size_t)B * sizeof(float));
    y = qb_malloc((size_t)B * sizeof(int));
    perm = qb_malloc((size_t)train.n * sizeof(int));
    stats = qb_malloc((size_t)L * QB_LAYER_STATS * sizeof(double));
    if (!x || !dlogits || !losses || !y || !perm || !stats) { rc = QB_EXIT_FAIL; goto fail; }
    if (resume && ((rc = truncate_log(log_path, st.step)) || (rc = truncate_log(ep_path, st.epoch)))) goto fail;
    log = open_log(log_path, resume, "step,epoch,loss,lr,grad_norm", L);
    eplog = fopen(ep_path, resume ? "a" : "w");
    if (!log || !eplog) { rc = qb_error(QB_EXIT_IO, "%s: cannot write logs: %s", c.output, strerror(errno)); goto fail; }
    if (!resume || ftell(eplog) == 0) fprintf(eplog, "epoch,step,lr,train_loss,train_top1,test_top1,seconds,images_per_s\n");

    int last = stop_after > 0 && stop_after < c.epochs ? (int)stop_after : c.epochs;
    qb_progress pr;
    char label[32];
    snprintf(label, sizeof label, "train %s", vit_attn_name(vc.attn));
    qb_progress_start(&pr, label, (last - st.epoch) * spe);
    long done_steps = 0;
    for (int e = st.epoch; e < last; e++) {
        qb_train_shuffle(perm, train.n, c.seed, e);
        double t0 = qb_now(), loss_sum = 0.0, lr = 0.0;
        long correct = 0;
        for (long it = 0; it < spe; it++) {
            long step = (long)e * spe + it;
            lr = qb_train_lr(&c, step, spe);
            qb_train_batch(x, y, &train, perm + it * B, B, &c, e);
            if ((rc = vit_forward(&m, x, B, VIT_MODE_FULL, NULL))) goto fail;
            double loss;
            if ((rc = crossentropy_forward_backward(losses, dlogits, &loss, m.acts.logits, y, B, K,
                                                    (float)c.label_smoothing, 1.0f / B))) {
                rc = qb_error(QB_EXIT_FAIL, "training diverged at step %ld (epoch %d): %s", step + 1, e + 1, qb_last_error());
                goto fail;
            }
            for (int b = 0; b < B; b++) {
                const float *z = m.acts.logits + (size_t)b * K;
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (z[k] > z[best]) best = k;
                correct += best == y[b];
            }
            int want_stats = c.log_every > 0 && step % c.log_every == 0;
            /* on the batch's first 32 images: a few % of a step every log_every steps */
            if (want_stats && (rc = qb_layer_stats(&m, B < 32 ? B : 32, stats))) goto fail;
            if ((rc = vit_zero_grad(&m)) || (rc = vit_backward(&m, dlogits, NULL))) goto fail;
            double gn = qb_grad_norm(&m);
            if (!isfinite(gn)) { rc = qb_error(QB_EXIT_FAIL, "training diverged at step %ld: gradient norm %g", step + 1, gn); goto fail; }
            if (c.clip_grad > 0) qb_clip_grads(&m, gn, c.clip_grad);
            qb_adamw_step(&opt, &m, lr, &c);
            loss_sum += loss;
            fprintf(log, "%ld,%d,%.6f,%.9g,%.6g", opt.step, e + 1, loss, lr, gn);
            for (int l = 0; l < L; l++)
                for (int s = 0; s < QB_LAYER_STATS; s++)
                    if (want_stats) fprintf(log, ",%.6g", stats[l * QB_LAYER_STATS + s]);
                    else fputc(',', log);
            fputc('\n', log);
            if (want_stats) fflush(log); /* the log can be watched while training runs */
            qb_progress_update(&pr, ++done_steps);
        }
        double secs = qb_now() - t0, top1 = 0;
        if ((rc = evaluate(&m, &test, EB, x, &top1))) goto fail;
        st.epoch = e + 1, st.step = opt.step, st.test_top1 = top1, st.lr = lr;
        if ((rc = qb_train_save(model_path, optim_path, &m, &opt, &c, &st, train.class_names))) goto fail;
        fprintf(eplog, "%d,%ld,%.9g,%.6f,%.4f,%.4f,%.2f,%.2f\n", e + 1, opt.step, lr, loss_sum / spe,
                100.0 * correct / ((double)spe * B), top1, secs, spe * B / secs);
        fflush(log);
        fflush(eplog);
        if (pr.active) fputc('\n', stderr);
        printf("epoch %d/%d  step %ld  lr %.3g  loss %.4f  train %.2f%%  test top-1 %.2f%%  %.1f img/s\n", e + 1,
               c.epochs, opt.step, lr, loss_sum / spe, 100.0 * correct / ((double)spe * B), top1, spe * B / secs);
        fflush(stdout);
    }
    qb_progress_finish(&pr);
    printf("questbench train: %s (%d/%d epochs, test top-1 %.2f%%)\n", model_path, st.epoch, c.epochs, st.test_top1);
done:
    rc = 0;
    goto out;
fail:
    rc = cmd_fail(rc ? rc : QB_EXIT_FAIL);
out:
    if (log) fclose(log);
    if (eplog) fclose(eplog);
    free(x), free(dlogits), free(losses), free(y), free(perm), free(stats);
    qb_train_set_free(&train);
    qb_train_set_free(&test);
    qb_adamw_free(&opt);
    vit_free(&m);
    return rc;
}
