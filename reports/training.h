/* training.h — charts and a table from `questbench train` output folders (the instability
 * experiment: query/key norm growth, max attention logit, attention entropy, loss). */
#ifndef QB_TRAINING_H
#define QB_TRAINING_H
#include "qb.h"

/* Read dirs[k]/train_log.csv and dirs[k]/epochs.csv for n runs named names[k]; write
 * out_dir/training.md and training_{q_norm,k_norm,logit_max,entropy,loss}.svg atomically.
 * QB_EXIT_DATA names a missing or malformed log; QB_EXIT_IO a write failure. */
int qb_training_report(const char *const *names, const char *const *dirs, int n, const char *out_dir);

#endif
