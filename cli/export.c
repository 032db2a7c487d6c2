/* export.c: `cnnlab export CHECKPOINT -o model.onnx [--opset 17|21] [--no-normalize]`
 * writes a trained model as an ONNX file (src/deploy/onnx_export.c) with its class
 * names, normalisation and model text in the metadata. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *out;
    const char *format;
    const char *opset; /* "17" or "21" (the table's choices) */
    bool no_normalize;
} export_options;

/* One row per option (cli.h); a new output format adds its name to --format's
 * choices and its own rows here. */
#define EF(field) offsetof(export_options, field)
static const cli_option export_options_table[] = {
    {"out", OPT_TEXT, EF(out), "the file to write (also -o)", .arg = "FILE",
     .def = "the checkpoint's name with .onnx", .short_name = 'o'},
    {"format", OPT_TEXT, EF(format), "the file format", .arg = "FORMAT", .def = "onnx",
     .choices = "onnx"},
    {"opset", OPT_TEXT, EF(opset),
     "ONNX opset: 21 (GroupNormalization, Gelu) or 17 (InstanceNormalization "
     "decomposition, for older runtimes)",
     .arg = "N", .def = "21", .choices = "17|21"},
    {"no-normalize", OPT_FLAG, EF(no_normalize),
     "leave the input normalisation out of the graph: it then takes normalised input",
     .def = "off"},
    {0},
};

static int cmd_export(int argc, char **argv);

const cli_command export_command = {
    .name = "export",
    .operands = "CHECKPOINT",
    .summary = "the model as ONNX (inference form, normalisation and class names inside)",
    .description =
        "Writes the model of a checkpoint as ONNX in inference form (dropout left out,\n"
        "BatchNorm with its running statistics). Input \"input\" is NCHW float32 pixels on\n"
        "the 0..1 scale, normalised inside the graph; output \"logits\" is [N, classes].\n"
        "The class names, normalisation, dataset and model text go into the metadata.",
    .options = export_options_table,
    .run = cmd_export,
};

/* "dir/name.safetensors" -> "dir/name.onnx" */
static void default_out(const char *ck, char *buf, size_t len) {
    const char *dot = strrchr(ck, '.'), *slash = strrchr(ck, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - ck) : strlen(ck);
    snprintf(buf, len, "%.*s.onnx", (int)stem, ck);
}

static int cmd_export(int argc, char **argv) {
    export_options o = {.format = "onnx", .opset = "21"};
    const char *pos[1] = {NULL};
    int n = cli_parse(&export_command, &o, argc - 1, argv + 1, pos, 1);
    if (n < 0) return cli_parse_status(n);
    if (n == 0) {
        cli_error("export: which checkpoint?");
        cli_print_usage(&export_command, stderr);
        return EXIT_USAGE;
    }
    const int opset = atoi(o.opset);
    char out[4096];
    if (o.out) snprintf(out, sizeof out, "%s", o.out);
    else default_out(pos[0], out, sizeof out);
    cli_checkpoint ck;
    if (!cli_open_checkpoint(pos[0], (cl_compile_args){.max_batch = 1, .threads = 1}, &ck)) return 1;
    char *text = NULL;
    {
        /* the model text travels in the metadata, as in the checkpoint */
        char err[1024];
        cl_safetensors *sf = cl_safetensors_read(pos[0], err, sizeof err);
        const char *t = sf ? cl_safetensors_meta(sf, "cnnlab.model_text") : NULL;
        text = t ? strdup(t) : NULL;
        cl_safetensors_free(sf);
    }
    cl_onnx_export_args a = {.opset = opset, .mean = ck.mean, .std = ck.std,
                             .normalize = !o.no_normalize,
                             .class_names = (const char *const *)ck.class_names,
                             .model_text = text, .dataset = ck.dataset};
    char err[1024];
    int rc = 0;
    if (cl_onnx_export(ck.m, &a, out, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        rc = 1;
    } else {
        printf("Wrote %s (ONNX opset %d, %s input, %d classes)\n", out, opset,
               o.no_normalize ? "normalised" : "0..1 pixel", ck.classes);
    }
    free(text);
    cli_close_checkpoint(&ck);
    return rc;
}
