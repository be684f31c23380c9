/* main.c — questbench entry point: dispatches to one command per file in cmd/. */
#include "cmd.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: questbench COMMAND [OPTIONS]\n"
            "commands:\n"
            "  info      describe a model file\n"
            "  predict   classify images, CSV on stdout\n"
            "  eval      top-1/top-5 accuracy of a model on a data tree\n"
            "  attack    robust accuracy under FGSM, PGD, APGD, Square, AutoAttack over a list of eps\n"
            "  corrupt   ImageNet-C corruptions: generate them, or evaluate models with CE and mCE\n"
            "  run       run a suite (YAML): clean, corruptions, attacks, report; resumable\n"
            "  report    Markdown/CSV/SVG report from results files; regression gate\n"
            "  merge     merge the results files of --shard K/N runs into the single-process rows\n"
            "  train     train a ViT from a YAML config (AdamW, warmup + cosine, checkpoints, logs)\n"
            "run `questbench COMMAND --help` for a command's options; `questbench --version`.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return QB_EXIT_USAGE; }
    const char *c = argv[1];
    if (!strcmp(c, "--version") || !strcmp(c, "version")) { printf("questbench %s\n", QB_VERSION); return 0; }
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) { usage(stdout); return 0; }
    if (!strcmp(c, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(c, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(c, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(c, "attack")) return cmd_attack(argc - 1, argv + 1);
    if (!strcmp(c, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(c, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(c, "corrupt")) return cmd_corrupt(argc - 1, argv + 1);
    if (!strcmp(c, "merge")) return cmd_merge(argc - 1, argv + 1);
    if (!strcmp(c, "train")) return cmd_train(argc - 1, argv + 1);
    fprintf(stderr, "questbench: unknown command '%s' (try questbench --help)\n", c);
    return QB_EXIT_USAGE;
}
