/* progress.c — terminal progress bar (stderr only, never mixed with data on stdout). */
#include "progress.h"
#include "qb.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void qb_progress_start(qb_progress *p, const char *label, long total) {
    memset(p, 0, sizeof *p);
    p->total = total;
    p->t0 = qb_now();
    p->active = isatty(STDERR_FILENO);
    snprintf(p->label, sizeof p->label, "%s", label);
}

static void draw(qb_progress *p, int final) {
    double el = qb_now() - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    double eta = rate > 0 ? (p->total - p->done) / rate : 0;
    int width = 30, fill = p->total > 0 ? (int)(width * p->done / p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %ld/%ld  %.1f/s  %s %02d:%02d%s", p->label, bar, p->done, p->total, rate,
            final ? "took" : "eta", (int)((final ? el : eta) / 60), (int)(final ? el : eta) % 60, final ? "\n" : "  ");
    fflush(stderr);
}

void qb_progress_update(qb_progress *p, long done) {
    p->done = done;
    if (!p->active) return;
    double t = qb_now();
    if (t - p->last_draw < 0.1 && done < p->total) return;
    p->last_draw = t;
    draw(p, 0);
}

void qb_progress_finish(qb_progress *p) {
    if (p->active) draw(p, 1);
    p->active = 0;
}
