/* run.c — `questbench run SUITE.yaml`: clean evaluation, corruptions and attacks for a list
 * of models, appended to one results file and resumable, then the report. Each stage runs
 * the same code as the eval/corrupt/attack commands, with --out and --resume. */
#include "cmd.h"
#include "suite.h"
#include "sharding.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench run SUITE.yaml [--dry-run] [--shard K/N]\n"
               "Runs a suite: clean accuracy, corruptions and attacks for each model, appending to\n"
               "OUTPUT/results.csv (a killed run resumes where it stopped), then writes OUTPUT/report/.\n"
               "--dry-run prints the stages as commands without running them.\n"
               "--shard K/N runs every stage on shard K of N of the images into OUTPUT/results.shardKofN.csv\n"
               "(no report: `questbench merge` the N files into OUTPUT/results.csv, then run again for it).\n"
               "Under mpirun/srun (make MPI=1) rank r runs shard r+1 of the ranks and rank 0 merges them\n"
               "into OUTPUT/results.csv and writes the report (docs/cluster.md).\n"
               "Suite keys (see configs/*.yaml): name, output, data, labels, subset, limit, preset, seed,\n"
               "threads, batch, models: [{name, file, attention}], clean: true|false,\n"
               "corruptions: {list, severities}, attacks: [{attack, eps, norm, steps, step_size, restarts,\n"
               "eps_space, protocol, label_source}],\n"
               "report: {baseline_model, paper}. Values may use $VAR or ${VAR} from the environment.\n");
}

/* argv builder */
typedef struct {
    char *v[96];
    int n;
    char store[96][1100];
} args;

static void add(args *a, const char *flag, const char *value) {
    if (a->n + 2 >= 95) return;
    if (flag) snprintf(a->store[a->n], sizeof a->store[0], "%s", flag), a->v[a->n] = a->store[a->n], a->n++;
    if (value) snprintf(a->store[a->n], sizeof a->store[0], "%s", value), a->v[a->n] = a->store[a->n], a->n++;
    a->v[a->n] = NULL;
}

static char run_shard[32]; /* "K/N" passed to every stage as --shard, or "" */

static void add_common(args *a, const suite *s, const char *results) {
    add(a, "--data", s->data);
    if (s->labels[0]) add(a, "--labels", s->labels);
    if (s->subset[0]) add(a, "--subset", s->subset);
    if (s->limit[0]) add(a, "--limit", s->limit);
    if (s->seed[0]) add(a, "--seed", s->seed);
    if (s->threads[0]) add(a, "--threads", s->threads);
    if (s->batch[0]) add(a, "--batch", s->batch);
    if (run_shard[0]) add(a, "--shard", run_shard);
    add(a, "--out", results);
    add(a, "--resume", NULL);
}

static void model_arg(char *buf, size_t n, const suite_model *m) { snprintf(buf, n, "%s=%s", m->name, m->file); }

static int stage_quiet; /* MPI ranks other than 0 do not echo the stages */

static int stage(int (*fn)(int, char **), args *a, int dry, int idx, int total) {
    /* one write per line, so that the lines of several MPI ranks do not interleave */
    char line[8192];
    size_t o = (size_t)snprintf(line, sizeof line, "questbench run: [%d/%d] questbench", idx, total);
    for (int i = 0; i < a->n && o < sizeof line; i++) o += (size_t)snprintf(line + o, sizeof line - o, " %s", a->v[i]);
    if (!stage_quiet) fprintf(stderr, "%.8190s\n", line);
    if (dry) return 0;
    return fn(a->n, a->v);
}

int cmd_run(int argc, char **argv) {
    const char *path = NULL;
    int dry = 0, shard_k = 0, shard_n = 0, rank = 0, ranks = 1;
    run_shard[0] = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { help(stdout); return 0; }
        if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (!strcmp(argv[i], "--shard")) {
            if (i + 1 >= argc) { fprintf(stderr, "questbench run: --shard needs a value\n"); return QB_EXIT_USAGE; }
            if (cmd_parse_shard(argv[++i], &shard_k, &shard_n)) return QB_EXIT_USAGE;
        }
        else if (argv[i][0] == '-') { fprintf(stderr, "questbench run: unknown option '%s'\n", argv[i]); return QB_EXIT_USAGE; }
        else if (path) { fprintf(stderr, "questbench run: one suite at a time\n"); return QB_EXIT_USAGE; }
        else path = argv[i];
    }
    if (!path) { help(stderr); return QB_EXIT_USAGE; }
    suite *s = calloc(1, sizeof *s);
    int rc = qb_suite_parse_file(s, path);
    if (rc) { free(s); return cmd_fail(rc); }
    for (int i = 0; i < s->n_models && !dry; i++) {
        struct stat st;
        if (stat(s->models[i].file, &st)) {
            rc = cmd_fail(qb_error(QB_EXIT_MODEL, "%s: model '%s': %s: %s", path, s->models[i].name, s->models[i].file, strerror(errno)));
            free(s);
            return rc;
        }
    }
    if (!dry && mkdir(s->output, 0755) && errno != EEXIST) {
        rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot create output folder: %s", s->output, strerror(errno)));
        free(s);
        return rc;
    }
    char results[1100], report_dir[1100], mbuf[MAX_MODELS][1200], merged[1100];
    snprintf(results, sizeof results, "%.1000s/results.csv", s->output);
    snprintf(merged, sizeof merged, "%s", results);
    /* MPI: rank r runs shard r+1 of the ranks into its own shard file; rank 0 merges them */
    if (!dry) cmd_mpi_start(&rank, &ranks);
    if (ranks > 1 && shard_n) {
        rc = cmd_fail(qb_error(QB_EXIT_USAGE, "--shard: not under mpirun (there every rank is one shard)"));
        cmd_mpi_end();
        free(s);
        return rc;
    }
    if (ranks > 1) shard_k = rank + 1, shard_n = ranks;
    if (shard_n) {
        snprintf(run_shard, sizeof run_shard, "%d/%d", shard_k, shard_n);
        snprintf(results, sizeof results, "%.1000s/results.shard%dof%d.csv", s->output, shard_k, shard_n);
    }
    if (ranks > 1) cmd_mpi_quiet_stdout(1); /* the stages' tables would be per shard */
    stage_quiet = rank > 0;
    snprintf(report_dir, sizeof report_dir, "%.1000s/report", s->output);
    for (int i = 0; i < s->n_models; i++) model_arg(mbuf[i], sizeof mbuf[i], &s->models[i]);
    int total = 0, idx = 0;
    args *a = calloc(1, sizeof *a);
    /* corrupt and attack take every model at once, unless a model overrides its attention
     * kind (the override is per command): then one stage per model */
    int per_model = 0;
    for (int i = 0; i < s->n_models; i++) per_model |= s->models[i].attention[0] != 0;
    int groups = per_model ? s->n_models : 1;
    total = (s->clean ? s->n_models : 0) + groups * ((s->corruptions[0] ? 1 : 0) + s->n_attacks) + 1;
    for (int i = 0; i < s->n_models && !rc && s->clean; i++) {
        a->n = 0;
        add(a, "eval", NULL), add(a, "--model", mbuf[i]);
        if (s->models[i].attention[0]) add(a, "--attention", s->models[i].attention);
        add_common(a, s, results);
        rc = stage(cmd_eval, a, dry, ++idx, total);
    }
    for (int g = 0; g < groups && !rc; g++) {
        int m0 = per_model ? g : 0, m1 = per_model ? g + 1 : s->n_models;
        if (s->corruptions[0]) {
            a->n = 0;
            add(a, "corrupt", NULL);
            for (int i = m0; i < m1; i++) add(a, "--model", mbuf[i]);
            if (per_model && s->models[g].attention[0]) add(a, "--attention", s->models[g].attention);
            if (s->preset[0]) add(a, "--preset", s->preset);
            add(a, "--corruptions", s->corruptions);
            if (s->severities[0]) add(a, "--severities", s->severities);
            add_common(a, s, results);
            rc = stage(cmd_corrupt, a, dry, ++idx, total);
        }
        for (int k = 0; k < s->n_attacks && !rc; k++) {
            const suite_attack *at = &s->attacks[k];
            a->n = 0;
            add(a, "attack", NULL);
            for (int i = m0; i < m1; i++) add(a, "--model", mbuf[i]);
            if (per_model && s->models[g].attention[0]) add(a, "--attention", s->models[g].attention);
            add(a, "--attack", at->attack), add(a, "--eps", at->eps);
            if (at->norm[0]) add(a, "--norm", at->norm);
            if (at->steps[0]) add(a, "--steps", at->steps);
            if (at->step_size[0]) add(a, "--step-size", at->step_size);
            if (at->restarts[0]) add(a, "--restarts", at->restarts);
            if (at->eps_space[0]) add(a, "--eps-space", at->eps_space);
            if (at->protocol[0]) add(a, "--protocol", at->protocol);
            if (at->label_source[0]) add(a, "--label-source", at->label_source);
            add_common(a, s, results);
            rc = stage(cmd_attack, a, dry, ++idx, total);
        }
    }
    if (ranks > 1) {
        cmd_mpi_quiet_stdout(0);
        rc = cmd_mpi_max_rc(rc); /* a rank that failed has said why; every rank stops */
        if (!rc) rc = cmd_mpi_gather_merge(results, merged, rank, ranks);
        snprintf(results, sizeof results, "%s", merged);
        if (rank) { cmd_mpi_end(); free(a), free(s); return rc; }
    } else if (shard_n && !rc) {
        fprintf(stderr, "questbench run: shard %d/%d done (%s); when every shard is: questbench merge %.1000s/results.shard*of%d.csv "
                        "--out %s, then run the suite again for the report\n", shard_k, shard_n, results, s->output, shard_n, merged);
        cmd_mpi_end();
        free(a), free(s);
        return 0;
    }
    if (!rc) {
        a->n = 0;
        add(a, "report", NULL), add(a, results, NULL), add(a, "--out", report_dir);
        if (s->baseline_model[0]) add(a, "--baseline-model", s->baseline_model);
        if (s->paper[0]) add(a, "--paper", s->paper);
        rc = stage(cmd_report, a, dry, ++idx, total);
    }
    cmd_mpi_end();
    free(a);
    free(s);
    return rc;
}
