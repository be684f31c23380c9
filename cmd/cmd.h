/* cmd.h — the command entry points and the option handling they share. */
#ifndef QB_CMD_H
#define QB_CMD_H
#include "qb.h"
#include "model.h"

int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_attack(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_corrupt(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_train(int argc, char **argv);

/* Options every command that takes a model accepts. */
#define QB_MODEL_OPTIONS_HELP                                                                       \
    "  --attention sdpa|qknorm|quest  attention kind (default: file metadata, else sdpa)\n"        \
    "  --heads N                      number of heads (default: metadata, else width/64)\n"         \
    "  --mean a,b,c  --std a,b,c      input normalisation (default: metadata, else ImageNet)\n"     \
    "  --crop-pct X                   eval resize: shorter side to floor(size/X) (default 0.875)\n" \
    "  --interpolation bicubic|bilinear|nearest|box  resize filter (default: metadata, else bilinear)\n" \
    "  --quest-eps X                  QUEST key-norm clamp (default: metadata, else 1e-6)\n"        \
    "  --threads N                    threads (default: all cores)\n"                               \
    "  --max-pixels N                 refuse images of more than N pixels (default 178956970, as Pillow)\n"

/* If argv[*i] is a model option, consume it (and its value) into ov / threads (--max-pixels sets
 * qb_max_image_pixels) and return 1;
 * return 0 if it is not one; return -1 after printing an error for a bad value. */
int cmd_model_option(int argc, char **argv, int *i, qb_model_overrides *ov, int *threads);
/* Parse a positive integer flag value; -1 after printing an error. */
int cmd_parse_int(const char *flag, const char *v, long lo, long hi, long *out);
/* Load a model, printing the notes (defaults/overrides applied) on stderr unless quiet. */
int cmd_load_model(qb_model *m, const char *path, const qb_model_overrides *ov, int quiet);
/* Apply --threads (0 = all cores); OpenBLAS is serial, all threading is OpenMP. */
void cmd_set_threads(int threads);
/* "--model NAME=PATH" or "--model PATH": returns PATH and writes NAME (default: the file
 * name without its folder and .safetensors) into name. */
const char *cmd_model_name(const char *arg, char *name, size_t len);
/* The results rows' dataset field: the data path, and where a selection applies
 * "?labels=<sha>&subset=<sha>&limit=N" (the first 12 hex digits of each file's SHA-256), then
 * the model options given that change the results (&crop-pct=, &interpolation=, &mean=a:b:c,
 * &std=, &heads=, &quest-eps=), so that rows measured on other images or with another
 * preprocessing never share a key (--resume). QB_EXIT_DATA if a file cannot be read. */
int cmd_dataset_id(char *out, size_t len, const char *data, const char *labels, const char *subset, long limit,
                   const qb_model_overrides *ov);
/* Print "questbench: <last error>" and return rc. */
int cmd_fail(int rc);
/* "--shard K/N" (cmd/shard.c): 1 <= K <= N; -1 after printing an error. Helpers in cmd/sharding.h. */
int cmd_parse_shard(const char *v, int *k, int *n);

#endif
