/* progress.h — a progress bar with rate and ETA on stderr, drawn only when stderr is a terminal. */
#ifndef QB_PROGRESS_H
#define QB_PROGRESS_H
typedef struct {
    long total, done;
    double t0, last_draw;
    int active;
    char label[32];
} qb_progress;
void qb_progress_start(qb_progress *p, const char *label, long total);
void qb_progress_update(qb_progress *p, long done);
void qb_progress_finish(qb_progress *p);
#endif
