/* test_report.c — reports/: results rows (append, torn tail, read), SHA-256, and
 * `questbench report` against metrics recomputed independently by
 * tests/ref/make_report_fixtures.py; SVG well-formedness; aligned Markdown tables; the
 * regression gate's exit codes both ways. */
#include "qbtest.h"
#include "results.h"
#include "training.h"
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

START_TEST(test_sha256_vectors) {
    char dir[256], path[300], hex[65];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(path, sizeof path, "%s/abc", dir);
    qbt_write_file(path, "abc", 3);
    ck_assert_int_eq(qb_sha256_file(path, hex), 0);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    qbt_write_file(path, "", 0);
    ck_assert_int_eq(qb_sha256_file(path, hex), 0);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* 1,000,000 'a' exercises multi-block reads */
    char *big = malloc(1000000);
    memset(big, 'a', 1000000);
    qbt_write_file(path, big, 1000000);
    free(big);
    ck_assert_int_eq(qb_sha256_file(path, hex), 0);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_append_read_torn_tail) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(path, sizeof path, "%s/res.csv", dir);
    qb_result r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 2; i++) {
        snprintf(r[i].model, sizeof r[i].model, "m,odel \"%d\"", i); /* needs quoting */
        snprintf(r[i].attention, sizeof r[i].attention, "quest");
        snprintf(r[i].kind, sizeof r[i].kind, "attack");
        snprintf(r[i].attack, sizeof r[i].attack, "pgd");
        snprintf(r[i].norm, sizeof r[i].norm, "linf");
        r[i].eps = 4.0 / 255, r[i].n = 10, r[i].correct = 3 + i, r[i].seed = 42;
        qb_result_finish(&r[i]);
    }
    ck_assert_int_eq(qb_results_append(path, &r[0], 1), 0);
    /* a crash mid-append leaves a torn line: readers ignore it, the next append cuts it */
    FILE *f = fopen(path, "a");
    fputs("r9,torn,row,without", f);
    fclose(f);
    qb_results rs = {0};
    ck_assert_int_eq(qb_results_read(&rs, path), 0);
    ck_assert_int_eq(rs.n, 1);
    qb_results_free(&rs);
    ck_assert_int_eq(qb_results_append(path, &r[1], 1), 0);
    ck_assert_int_eq(qb_results_read(&rs, path), 0);
    ck_assert_int_eq(rs.n, 2);
    ck_assert_str_eq(rs.rows[1].model, "m,odel \"1\"");
    ck_assert_int_eq(rs.rows[1].correct, 4);
    ck_assert_double_eq_tol(rs.rows[1].eps, 4.0 / 255, 1e-12);
    ck_assert_double_eq_tol(rs.rows[1].value, 0.4, 1e-12);
    ck_assert_int_eq(qb_results_has(&rs, &r[0]), 1);
    r[0].eps = 8.0 / 255;
    ck_assert_int_eq(qb_results_has(&rs, &r[0]), 0);
    qb_results_free(&rs);
    char *s = qbt_slurp(path);
    ck_assert_ptr_null(strstr(s, "torn"));
    free(s);
    /* malformed files */
    qbt_write_file(path, "a,b\n", 4);
    ck_assert_int_eq(qb_results_read(&rs, path), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "header"));
    qb_results_free(&rs);
}
END_TEST

/* fuzz regressions (fuzz_results_csv): numbers that overflow the integer fields were converted
 * from double (undefined behaviour); they are malformed rows now, and seeds keep all 64 bits */
START_TEST(test_read_numbers_strict) {
    const char *H = QB_RESULTS_HEADER "\n";
    const char *ok = "r,m,,sdpa,d,cifar,clean,,0,,,0,10,3,top1,0.3,18446744073709551615,0.1.0,t\n";
    char buf[1024];
    qb_results rs = {0};
    snprintf(buf, sizeof buf, "%s%s", H, ok);
    ck_assert_int_eq(qb_results_read_buffer(&rs, buf, strlen(buf), "mem.csv"), 0);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_uint_eq(rs.rows[0].seed, UINT64_MAX);
    ck_assert_int_eq(rs.rows[0].n, 10);
    qb_results_free(&rs);
    const char *bad[] = {
        "r,m,,sdpa,d,cifar,clean,,0,,,0,2e53,3,top1,0.3,0,0.1.0,t\n",            /* n beyond long */
        "r,m,,sdpa,d,cifar,clean,,0,,,0,10,3,top1,0.3,1e30,0.1.0,t\n",           /* seed beyond uint64 */
        "r,m,,sdpa,d,cifar,clean,,0,,,0,10,3,top1,0.3,18446744073709551616,0.1.0,t\n",
        "r,m,,sdpa,d,cifar,clean,,0,,,0,99999999999999999999,3,top1,0.3,0,0.1.0,t\n",
        "r,m,,sdpa,d,cifar,clean,,2.5,,,0,10,3,top1,0.3,0,0.1.0,t\n",            /* severity not an integer */
        "r,m,,sdpa,d,cifar,clean,,0,,,0,-1,0,top1,0.3,0,0.1.0,t\n",
        "r,m,,sdpa,d,cifar,clean,,0,,,0,10,11,top1,0.3,0,0.1.0,t\n",             /* correct > n */
        "r,m,,sdpa,d,cifar,clean,,0,,,nan,10,3,top1,0.3,0,0.1.0,t\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(buf, sizeof buf, "%s%s", H, bad[i]);
        ck_assert_int_eq(qb_results_read_buffer(&rs, buf, strlen(buf), "mem.csv"), QB_EXIT_DATA);
        ck_assert_msg(strstr(qb_last_error(), "mem.csv:2: malformed number") != NULL, "case %zu: %s", i, qb_last_error());
        qb_results_free(&rs);
    }
    ck_assert_int_eq(qb_results_read_buffer(&rs, "", 0, "mem.csv"), QB_EXIT_DATA);
    qb_results_free(&rs);
}
END_TEST

/* minimal XML well-formedness: balanced tags, quoted attributes, known entities */
static int xml_well_formed(const char *s, char *why, size_t n) {
    char stack[64][32];
    int depth = 0, root_closed = 0;
    const char *p = s;
    if (!strncmp(p, "<?xml", 5)) p = strstr(p, "?>") + 2;
    while (*p) {
        if (*p == '<') {
            if (root_closed) return snprintf(why, n, "content after the root"), 0;
            int closing = p[1] == '/';
            const char *q = p + 1 + closing;
            char name[32];
            int k = 0;
            while (*q && !strchr(" />\n", *q) && k < 31) name[k++] = *q++;
            name[k] = 0;
            if (!k) return snprintf(why, n, "empty tag name"), 0;
            while (*q && *q != '>' && !(q[0] == '/' && q[1] == '>')) {
                if (*q == '=') {
                    if (q[1] != '"') return snprintf(why, n, "unquoted attribute in <%s>", name), 0;
                    q = strchr(q + 2, '"');
                    if (!q) return snprintf(why, n, "unterminated attribute"), 0;
                } else if (*q == '<') return snprintf(why, n, "'<' inside <%s>", name), 0;
                q++;
            }
            if (!*q) return snprintf(why, n, "unterminated tag <%s>", name), 0;
            int self = *q == '/';
            if (closing) {
                if (!depth || strcmp(stack[depth - 1], name)) return snprintf(why, n, "mismatched </%s>", name), 0;
                if (--depth == 0) root_closed = 1;
            } else if (!self) {
                if (depth == 64) return snprintf(why, n, "too deep"), 0;
                snprintf(stack[depth++], 32, "%s", name);
            }
            p = q + (self ? 2 : 1);
        } else if (*p == '&') {
            const char *ents[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;"};
            int ok = 0;
            for (int i = 0; i < 5; i++) ok |= !strncmp(p, ents[i], strlen(ents[i]));
            if (!ok) return snprintf(why, n, "bad entity"), 0;
            p++;
        } else p++;
    }
    if (depth) return snprintf(why, n, "unclosed <%s>", stack[depth - 1]), 0;
    return root_closed;
}

static double summary_value(const char *csv, const char *model, const char *metric, double eps) {
    char key[256];
    snprintf(key, sizeof key, "\n%s,", model);
    for (const char *p = strstr(csv, key); p; p = strstr(p + 1, key)) {
        char m[64], att[16];
        double e, v;
        if (sscanf(p + strlen(key), "%15[^,],%63[^,],%lf,%lf", att, m, &e, &v) == 4 && !strcmp(m, metric) &&
            fabs(e - eps) < 1e-9)
            return v;
    }
    return NAN;
}

START_TEST(test_report_numbers_and_files) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    char new_csv[512];
    snprintf(new_csv, sizeof new_csv, "%s", qbt_fixture("reports/new.csv"));
    char *out, *err;
    int rc = qbt_cli(&out, &err, "report %s --out %s/rep", new_csv, dir);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "# questbench report"));
    free(out), free(err);
    char path[600];
    snprintf(path, sizeof path, "%s/rep/summary.csv", dir);
    char *sum = qbt_slurp(path), *exp = qbt_slurp(qbt_fixture("reports/expected.csv"));
    ck_assert_ptr_nonnull(sum);
    int checked = 0;
    for (char *line = strchr(exp, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        char model[64], metric[64];
        double want, eps = 0;
        ck_assert_int_eq(sscanf(line, "%63[^,],%63[^,],%lf", model, metric, &want), 3);
        char *at = strchr(metric, '@');
        if (at) *at = 0, eps = 4.0 / 255;
        double got = summary_value(sum, model, metric, eps);
        ck_assert_msg(fabs(got - want) < 1e-6, "%s %s: report %g, recomputed %g", model, metric, got, want);
        checked++;
    }
    ck_assert_int_eq(checked, 12);
    free(sum), free(exp);
    /* every SVG is well-formed XML; every Markdown table row of a table has the same width */
    const char *svgs[] = {"corruption_noise.svg", "corruption_extra.svg", "robust_pgd_linf.svg", "robust_worst_linf.svg"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/rep/%s", dir, svgs[i]);
        char *svg = qbt_slurp(path), why[128] = "";
        ck_assert_msg(svg != NULL, "%s missing", svgs[i]);
        ck_assert_msg(xml_well_formed(svg, why, sizeof why), "%s: %s", svgs[i], why);
        ck_assert_ptr_nonnull(strstr(svg, "vit-quest (quest)"));
        free(svg);
    }
    snprintf(path, sizeof path, "%s/rep/report.md", dir);
    char *md = qbt_slurp(path);
    int tables = 0, width = -1;
    for (char *line = md; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        int bytes = (int)(strchr(line, '\n') ? strchr(line, '\n') - line : (long)strlen(line)), len = 0;
        for (int i = 0; i < bytes; i++) len += ((unsigned char)line[i] & 0xC0) != 0x80; /* code points */
        if (line[0] == '|') {
            if (width < 0) width = len, tables++;
            else ck_assert_msg(len == width, "table row of width %d in a table of width %d: %.*s", len, width, bytes, line);
        } else width = -1;
    }
    ck_assert_int_ge(tables, 5);
    ck_assert_ptr_nonnull(strstr(md, "![noise](corruption_noise.svg)"));
    free(md);
}
END_TEST

/* --paper quest-vit-ti: the published rows, then each measured model under its attention, in
 * the standard protocol and, in their own rows, under elliptical-compat. */
START_TEST(test_paper_section) {
    char dir[256], csv[300];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(csv, sizeof csv, "%s/r.csv", dir);
    FILE *f = fopen(csv, "w");
    const char *pre = "r1,q,abababababababababababababababababababababababababababababababab,quest,/d,imagenet,";
    fprintf(f, "run_id,model,model_sha256,attention,dataset,preset,kind,corruption,severity,attack,norm,eps,n,correct,"
               "metric,value,seed,version,timestamp\n");
    fprintf(f, "%sclean,,0,,,0,100,74,top1,0.74,0,0.1.0,2026-11-26T00:00:00Z\n", pre);
    fprintf(f, "%sattack,,0,fgsm,linf,0.00392156863,100,50,top1,0.5,0,0.1.0,2026-11-26T00:00:00Z\n", pre);
    fprintf(f, "%sattack,,0,fgsm-ell,linf-n,0.00392156863,100,57,top1,0.57,0,0.1.0,2026-11-26T00:00:00Z\n", pre);
    fprintf(f, "%sattack,,0,standard-ell,linf-n,0.00392156863,100,27,top1,0.27,0,0.1.0,2026-11-26T00:00:00Z\n", pre);
    fclose(f);
    char *out, *err;
    int rc = qbt_cli(&out, &err, "report %s --out %s/rep --paper quest-vit-ti", csv, dir);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "| published"));
    ck_assert_ptr_nonnull(strstr(out, "56.90"));                 /* QUEST's published FGSM */
    char *std = strstr(out, "| measured: q @ε=0.003922");
    char *ell = strstr(out, "| measured, elliptical-compat: q @ε=0.003922");
    ck_assert_ptr_nonnull(std);
    ck_assert_ptr_nonnull(ell);
    /* standard row: clean 74, FGSM 50; compat row: FGSM 57, AutoAttack 27, no PGD */
    char line[512];
    sscanf(std, "%511[^\n]", line);
    ck_assert_msg(strstr(line, "74.00") && strstr(line, "50.00") && !strstr(line, "57.00"), "%s", line);
    sscanf(ell, "%511[^\n]", line);
    ck_assert_msg(strstr(line, "57.00") && strstr(line, "27.00") && !strstr(line, "50.00"), "%s", line);
    free(out), free(err);
}
END_TEST

START_TEST(test_regression_gate) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", qbt_fixture("reports/new.csv"));
    snprintf(b, sizeof b, "%s", qbt_fixture("reports/old.csv"));
    char *out, *err;
    /* the new run is 1 pp worse on every corruption and attack, 2 pp better on clean */
    int rc = qbt_cli(&out, &err, "report %s --baseline %s --tolerance 0.5", a, b);
    ck_assert_int_eq(rc, QB_EXIT_REGRESSION);
    ck_assert_ptr_nonnull(strstr(out, "REGRESSION vit-quest (quest) robust_pgd_linf eps=4/255"));
    ck_assert_ptr_nonnull(strstr(out, "REGRESSION vit-std (sdpa) error_fog"));
    ck_assert_ptr_null(strstr(out, "clean_top1"));
    ck_assert_ptr_nonnull(strstr(err, "worse than"));
    free(out), free(err);
    /* relative mCE moves most (clean error enters five times): 9.77 pp */
    rc = qbt_cli(&out, &err, "report %s --baseline %s --tolerance 10", a, b);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "no regression"));
    free(out), free(err);
    /* a baseline metric missing from the new results fails the gate: the new run without its pgd rows */
    char cmd[2048], c[600];
    snprintf(c, sizeof c, "%s/nopgd.csv", qbt_tmpdir());
    snprintf(cmd, sizeof cmd, "grep -v ',pgd,' %s > %s", a, c);
    ck_assert_int_eq(system(cmd), 0);
    rc = qbt_cli(&out, &err, "report %s --baseline %s --tolerance 10", c, b);
    ck_assert_int_eq(rc, QB_EXIT_REGRESSION);
    ck_assert_ptr_nonnull(strstr(out, "missing in the new results: vit-quest (quest) robust_pgd_linf"));
    ck_assert_ptr_nonnull(strstr(err, "or missing"));
    free(out), free(err);
    rc = qbt_cli(&out, &err, "report %s --baseline %s --tolerance -1", a, b);
    ck_assert_int_eq(rc, QB_EXIT_USAGE);
    free(out), free(err);
    rc = qbt_cli(&out, &err, "report %s/nope.csv", a);
    ck_assert_int_eq(rc, QB_EXIT_DATA);
    free(out), free(err);
}
END_TEST

/* the instability chart from two synthetic training runs: the table's values are the
 * last logged ones reduced over layers (max for norms and logits, mean for entropy) */
START_TEST(test_training_report) {
    char dir[256], p[600];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    const char *runs[2] = {"std", "quest"};
    for (int r = 0; r < 2; r++) {
        snprintf(p, sizeof p, "%s/%s", dir, runs[r]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/%s/train_log.csv", dir, runs[r]);
        FILE *f = fopen(p, "w");
        fprintf(f, "step,epoch,loss,lr,grad_norm,l0_q_mean,l0_q_max,l0_k_mean,l0_k_max,l0_logit_max,l0_entropy,"
                   "l1_q_mean,l1_q_max,l1_k_mean,l1_k_max,l1_logit_max,l1_entropy\n");
        for (int st = 1; st <= 600; st++) {
            double g = r == 0 ? st * 0.1 : 3.0; /* the standard run's norms grow, QUEST's do not */
            if (st % 2) fprintf(f, "%d,1,%.4f,0.001,1,,,,,,,,,,,,\n", st, 2.0 / st);
            else fprintf(f, "%d,1,%.4f,0.001,1,1,%.4f,1,%.4f,%.4f,2.0,1,%.4f,1,%.4f,%.4f,1.0\n", st, 2.0 / st, g, g + 1,
                         g * 2, g / 2, g, g);
        }
        fprintf(f, "601,1,0.1,0.001,1,1,9"); /* a torn last line of a running training */
        fclose(f);
        snprintf(p, sizeof p, "%s/%s/epochs.csv", dir, runs[r]);
        f = fopen(p, "w");
        fprintf(f, "epoch,step,lr,train_loss,train_top1,test_top1,seconds,images_per_s\n1,300,0.001,1,50,%s,1,1\n2,600,0.001,1,60,%s,1,1\n",
                r ? "70.5" : "60.0", r ? "71.25" : "66.5");
        fclose(f);
    }
    char d0[300], d1[300], out[300];
    snprintf(d0, sizeof d0, "%s/std", dir), snprintf(d1, sizeof d1, "%s/quest", dir), snprintf(out, sizeof out, "%s/chart", dir);
    const char *names[2] = {"sdpa", "quest"}, *dirs[2] = {d0, d1};
    ck_assert_int_eq(qb_training_report(names, dirs, 2, out), 0);
    snprintf(p, sizeof p, "%s/training.md", out);
    char *md = qbt_slurp(p);
    ck_assert_ptr_nonnull(md);
    /* sdpa at step 600: q max over layers = max(60, 60) = 60, k = 61, logit = 120, entropy = (2+1)/2 */
    ck_assert_msg(strstr(md, "| sdpa  | 2      | 66.50      | 600   | 60.000     | 61.000     | 120.000   | 1.500   |"), "%s", md);
    ck_assert_msg(strstr(md, "| quest | 2      | 71.25      | 600   | 3.000      | 4.000      | 6.000     | 1.500   |"), "%s", md);
    free(md);
    const char *svgs[] = {"training_q_norm.svg", "training_entropy.svg", "training_loss.svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", out, svgs[i]);
        char *svg = qbt_slurp(p), why[128] = "";
        ck_assert_ptr_nonnull(svg);
        ck_assert_msg(xml_well_formed(svg, why, sizeof why), "%s: %s", svgs[i], why);
        ck_assert_ptr_nonnull(strstr(svg, "quest (test 71.2%)"));
        free(svg);
    }
    /* per layer: one panel per layer (two here), each with both runs */
    snprintf(p, sizeof p, "%s/training_layers_logit_max.svg", out);
    char *svg = qbt_slurp(p), why[128] = "";
    ck_assert_ptr_nonnull(svg);
    ck_assert_msg(xml_well_formed(svg, why, sizeof why), "layers: %s", why);
    ck_assert_ptr_nonnull(strstr(svg, ">layer 0<"));
    ck_assert_ptr_nonnull(strstr(svg, ">layer 1<"));
    ck_assert_ptr_null(strstr(svg, ">layer 2<"));
    int polylines = 0;
    for (const char *q = svg; (q = strstr(q, "<polyline")); q++) polylines++;
    ck_assert_int_eq(polylines, 4);
    free(svg);
    /* test top-1 per epoch: two points per run, on a 0..100 axis */
    snprintf(p, sizeof p, "%s/training_test_top1.svg", out);
    svg = qbt_slurp(p);
    ck_assert_ptr_nonnull(svg);
    ck_assert_msg(xml_well_formed(svg, why, sizeof why), "top1: %s", why);
    int circles = 0;
    for (const char *q = svg; (q = strstr(q, "<circle")); q++) circles++;
    ck_assert_int_eq(circles, 4);
    ck_assert_ptr_nonnull(strstr(svg, ">100<"));
    free(svg);
    /* a diverged run logs inf: no chart coordinate may become nan (the finite points still plot) */
    snprintf(p, sizeof p, "%s/div", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/div/train_log.csv", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "step,epoch,loss,lr,grad_norm,l0_q_mean,l0_q_max,l0_k_mean,l0_k_max,l0_logit_max,l0_entropy\n"
               "10,1,2.0,0.001,1,1,2,1,2,5,3.5\n20,1,inf,0.001,inf,1,inf,1,inf,inf,3.0\n30,1,1.5,0.001,1,1,3,1,3,7,2.5\n");
    fclose(f);
    char d2[300], out2[300];
    snprintf(d2, sizeof d2, "%s/div", dir), snprintf(out2, sizeof out2, "%s/chart-div", dir);
    const char *dn[1] = {"sdpa"}, *dd[1] = {d2};
    ck_assert_int_eq(qb_training_report(dn, dd, 1, out2), 0);
    const char *div_svgs[] = {"training_layers_logit_max.svg", "training_logit_max.svg", "training_loss.svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", out2, div_svgs[i]);
        svg = qbt_slurp(p);
        ck_assert_ptr_nonnull(svg);
        ck_assert_msg(!strstr(svg, "nan") && !strstr(svg, "inf"), "%s has a non-finite coordinate", div_svgs[i]);
        ck_assert_ptr_nonnull(strstr(svg, "<polyline"));
        free(svg);
    }
    const char *bad[1] = {"/nonexistent/run"};
    ck_assert_int_eq(qb_training_report(names, bad, 1, out), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "train_log.csv"));
}
END_TEST

Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_append_read_torn_tail);
    tcase_add_test(tc, test_read_numbers_strict);
    tcase_add_test(tc, test_report_numbers_and_files);
    tcase_add_test(tc, test_regression_gate);
    tcase_add_test(tc, test_paper_section);
    tcase_add_test(tc, test_training_report);
    suite_add_tcase(s, tc);
    return s;
}
