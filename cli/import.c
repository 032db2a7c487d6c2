/* import.c: `cnnlab import MODEL.onnx [-o DIR] [--data NAME|DIR]` reads an ONNX model
 * (src/deploy/onnx_import.c) and writes DIR/model.net and DIR/model.safetensors, a
 * checkpoint with the metadata eval, predict, export and train --init read. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *out;
    const char *data;
} import_options;

/* One row per option (cli.h). */
#define IF(field) offsetof(import_options, field)
static const cli_option import_options_table[] = {
    {"out", OPT_TEXT, IF(out), "the folder to write (also -o)", .arg = "DIR",
     .def = "the file's name without .onnx", .short_name = 'o'},
    {"data", OPT_TEXT, IF(data), "the dataset eval should use", .arg = "NAME|DIR",
     .def = "the export's, else guessed from the input shape and classes"},
    {0},
};

static int cmd_import(int argc, char **argv);

const cli_command import_command = {
    .name = "import",
    .operands = "MODEL.onnx",
    .summary = "an ONNX model (e.g. from torch.onnx.export) as a model file and checkpoint",
    .description =
        "Reads an ONNX model made of ops cnnlab has (a cnnlab export, or torch.onnx.export\n"
        "of the PyTorch equivalent of a model file) and writes DIR/model.net and\n"
        "DIR/model.safetensors, for eval, predict, export and train --init. The input\n"
        "normalisation is taken from leading Sub/Div nodes when the graph has them, else\n"
        "mean 0 and std 1 (the model then sees pixels on the 0..1 scale).",
    .options = import_options_table,
    .run = cmd_import,
};

/* A dataset for models that do not say: by input shape and class count. */
static const char *guess_dataset(cl_shape in, int classes) {
    if (in.c == 3 && in.h == 32 && in.w == 32) return classes == 100 ? "cifar100" : "cifar10";
    if (in.c == 1 && in.h == 28 && in.w == 28) return "mnist";
    return "cifar10";
}

static bool write_text(const char *path, const char *text) {
    cli_atomic_file a;
    FILE *f = cli_atomic_open(&a, path);
    if (!f) return false;
    fputs(text, f);
    return cli_atomic_close(&a, true);
}

static int cmd_import(int argc, char **argv) {
    import_options o = {0};
    const char *path = NULL;
    int n = cli_parse(&import_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (n == 0) {
        cli_error("import: which ONNX file?");
        cli_print_usage(&import_command, stderr);
        return EXIT_USAGE;
    }
    char dir[4096];
    if (o.out) {
        snprintf(dir, sizeof dir, "%s", o.out);
    } else {
        const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
        size_t stem = dot && (!slash || dot > slash) && dot != path ? (size_t)(dot - path) : strlen(path);
        snprintf(dir, sizeof dir, "%.*s%s", (int)stem, path, stem == strlen(path) ? "_import" : "");
    }
    char err[1024];
    cl_onnx_import *imp = cl_onnx_import_read(path, err, sizeof err);
    if (!imp) {
        cli_error("%s", err);
        return 1;
    }
    int rc = 1;
    cl_model *m = cl_onnx_import_model(imp, (cl_compile_args){.max_batch = 1, .threads = 1}, err, sizeof err);
    char *classes = NULL;
    if (!m) {
        cli_error("%s", err);
        goto done;
    }
    if (!cli_mkdirs(dir)) {
        cli_error("%s: cannot create the folder: %s", dir, strerror(errno));
        goto done;
    }
    /* metadata as `cnnlab train` writes it */
    const char *dataset = o.data ? o.data : imp->dataset[0] ? imp->dataset : guess_dataset(imp->input, imp->classes);
    train_options opts;
    train_options_defaults(&opts);
    snprintf(opts.data, sizeof opts.data, "%s", dataset);
    char options[8192], mean[256] = "", std[256] = "";
    train_options_write(&opts, options, sizeof options);
    size_t clen = 1;
    for (int k = 0; k < imp->classes; k++) clen += (imp->class_names ? strlen(imp->class_names[k]) : 12) + 1;
    classes = calloc(clen, 1);
    if (!classes) {
        cli_error("out of memory");
        goto done;
    }
    for (int k = 0, len = 0; k < imp->classes; k++) {
        if (imp->class_names) len += snprintf(classes + len, clen - (size_t)len, "%s", imp->class_names[k]);
        else len += snprintf(classes + len, clen - (size_t)len, "%d", k);
        if (k + 1 < imp->classes) classes[len++] = '\n';
    }
    for (int c = 0, lm = 0, ls = 0; c < imp->input.c; c++) {
        lm += snprintf(mean + lm, sizeof mean - (size_t)lm, "%s%.9g", c ? "," : "", imp->mean[c]);
        ls += snprintf(std + ls, sizeof std - (size_t)ls, "%s%.9g", c ? "," : "", imp->std[c]);
    }
    const char *meta[] = {
        "cnnlab.model_text", imp->model_text,
        "cnnlab.options", options,
        "cnnlab.dataset", dataset,
        "cnnlab.classes", classes,
        "cnnlab.mean", mean,
        "cnnlab.std", std,
        "cnnlab.imported_from", path,
    };
    char net[4200], ck[4200];
    snprintf(net, sizeof net, "%s/model.net", dir);
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    if (!write_text(net, imp->model_text)) goto done;
    if (cl_model_save(m, NULL, ck, meta, (int)(sizeof meta / sizeof *meta / 2), err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        goto done;
    }
    printf("Imported %s: %d layers, %lld parameters, input %dx%dx%d, %d classes\n", path,
           cl_model_layer_count(m), (long long)cl_model_param_count(m), imp->input.c, imp->input.h,
           imp->input.w, imp->classes);
    printf("Normalisation: %s\n", imp->has_normalization ? "from the graph's leading Sub/Div nodes"
                                                         : "none in the graph (mean 0, std 1: 0..1 pixels)");
    printf("Wrote %s and %s (dataset for eval: %s)\n", net, ck, dataset);
    rc = 0;
done:
    free(classes);
    cl_model_free(m);
    cl_onnx_import_free(imp);
    return rc;
}
