/* main.c: the cnnlab program: dispatches to a subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (dist_size() > 1)
        fprintf(stderr, "cnnlab (rank %d): ", dist_rank());
    else
        fputs("cnnlab: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool cli_parse_shape(const char *s, cl_shape *out) {
    char *end;
    long v[3];
    for (int i = 0; i < 3; i++) {
        errno = 0;
        v[i] = strtol(s, &end, 10);
        if (end == s || errno || v[i] < 1 || v[i] > 65536) return false;
        if (i < 2 && *end != 'x') return false;
        s = end + (i < 2);
    }
    if (*end) return false;
    *out = (cl_shape){(int)v[0], (int)v[1], (int)v[2]};
    return true;
}

bool cli_parse_count(const char *s, long long *out) {
    long long v = 0;
    int digits = 0;
    for (; *s; s++) {
        if (*s == '_' || *s == ',') continue;
        if (*s < '0' || *s > '9' || v > (1LL << 50)) return false;
        v = v * 10 + (*s - '0');
        digits++;
    }
    if (!digits) return false;
    *out = v;
    return true;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: cnnlab COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  summary MODEL [--input CxHxW] [--max-params N]\n"
            "        layers, output shapes, parameters, receptive fields, MACs and memory;\n"
            "        with --max-params, exit 1 if the model has more trainable parameters\n"
            "  fetch cifar10|cifar100|mnist|fashion-mnist [--data-dir DIR]\n"
            "        download a dataset, check its MD5 and unpack it where train looks for it\n"
            "  stats DATASET [--data-dir DIR] [--grid OUT.png] [--per-class N]\n"
            "        images per split and class, per-channel min/max/mean/std/var, sample grid\n"
            "  augment-preview [DATASET] --aug SPEC [--grid OUT.png] [--n N] [--k K] [--seed S]\n"
            "        images beside augmented versions of them\n"
            "  train MODEL [--data NAME|DIR] [--epochs N] [--batch B] [--opt sgd|adam|adamw]\n"
            "        [--lr X] [--sched none|step|multistep|onecycle|cosine|plateau] [--aug SPEC]\n"
            "        [--out DIR] [--resume DIR] [--init FILE] ... (cnnlab train --help)\n"
            "        train a model; writes a run folder with metrics, log and checkpoints\n"
            "  eval CHECKPOINT [--data NAME|DIR] [--show N] [--out DIR]\n"
            "        test loss and accuracy, per-class accuracy, confusion matrix, misclassified\n"
            "  predict CHECKPOINT IMAGE... [--top K]\n"
            "        the top classes of PNG or JPEG images with their probabilities\n"
            "  report RUN [--data NAME|DIR] [--show N]\n"
            "        figures (curves, lr, per-class, confusion, misclassified, Grad-CAM) and\n"
            "        a self-contained report.html for a run folder (train writes them too)\n"
            "  compare RUN... [--out DIR] [--target ACC]\n"
            "        runs side by side: a table, overlaid curves, compare.png and compare.html\n"
            "  bench MODEL [--batch B] [--threads T] [--steps N] [--infer-batch B]\n"
            "        training and inference throughput on synthetic data\n"
            "  version\n"
            "        print the version\n"
            "\n"
            "Model files are described in docs/model-format.md; see README.md.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "summary")) return cmd_summary(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "stats")) return cmd_stats(argc - 1, argv + 1);
    if (!strcmp(cmd, "fetch")) return cmd_fetch(argc - 1, argv + 1);
    if (!strcmp(cmd, "augment-preview")) return cmd_augment_preview(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare")) return cmd_compare(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("cnnlab %s\n", CNNLAB_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    cli_error("unknown command '%s'", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
