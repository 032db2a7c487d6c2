/* export.c: `cnnlab export CHECKPOINT [--format onnx|c] ...`: the trained network in a
 * form that runs outside cnnlab. This holds the command's options and dispatches on
 * --format: `onnx` (the default) is written here through src/deploy/onnx_export.c,
 * with the class names, normalisation and model text in the metadata (its int8 form,
 * QuantizeLinear/DequantizeLinear pairs, and `c`, one dependency-free C file,
 * float32 or int8, are in cli/export_c.c, which builds the int8 network). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One row per option (cli.h); a new output format adds its name to --format's
 * choices and its own rows here. */
#define EF(field) offsetof(export_options, field)
static const cli_option export_options_table[] = {
    {"format", OPT_TEXT, EF(format), "what to write: onnx (one .onnx file) or c (model.c and model.h)",
     .arg = "FORMAT", .def = "onnx", .choices = "onnx|c"},
    {"out", OPT_TEXT, EF(out), "onnx: the file to write; c: the folder to write into (also -o)",
     .arg = "PATH", .def = "onnx: the checkpoint's name with .onnx (.int8.onnx); c: required",
     .short_name = 'o'},
    {"opset", OPT_TEXT, EF(opset),
     "onnx: opset 21 (GroupNormalization, Gelu) or 17 (InstanceNormalization "
     "decomposition, for older runtimes)",
     .arg = "N", .def = "21", .choices = "17|21"},
    {"no-normalize", OPT_FLAG, EF(no_normalize),
     "onnx: leave the input normalisation out of the graph: it then takes normalised input",
     .def = "off"},
    {"int8", OPT_FLAG, EF(int8), "quantize to int8 (weights per output channel, activations "
     "per tensor); onnx: QuantizeLinear/DequantizeLinear pairs", .def = "off"},
    {"uint8-activations", OPT_FLAG, EF(uint8_activations),
     "onnx --int8: write the activations as uint8 with the zero point + 128 (the same "
     "values), which ONNX Runtime on x86 fuses into its integer kernels throughout", .def = "off"},
    {"calib", OPT_INT, EF(calib), "--int8: calibrate on N training images", .def = "1000",
     .min = 1, .max = 1000000},
    {"data", OPT_TEXT, EF(data), "--int8: the dataset whose training split calibrates",
     .arg = "NAME|DIR", .def = "the checkpoint's"},
    {"data-dir", OPT_TEXT, EF(data_dir), "where to look for named datasets first", .arg = "DIR"},
    {0},
};

static int cmd_export(int argc, char **argv);

const cli_command export_command = {
    .name = "export",
    .operands = "CHECKPOINT",
    .summary = "the trained network as ONNX or as one dependency-free C file (float32 or int8)",
    .description =
        "Writes the model of a checkpoint in inference form (dropout left out, BatchNorm\n"
        "with its running statistics). --format onnx (the default): input \"input\" is\n"
        "NCHW float32 pixels on the 0..1 scale, normalised inside the graph; output\n"
        "\"logits\" is [N, classes]; the class names, normalisation, dataset and model\n"
        "text go into the metadata. --format c writes DIR/model.c and DIR/model.h: C99\n"
        "with no allocation and nothing but libm, int model_predict(const float *pixels,\n"
        "float *logits), pixels CHW on the 0..1 scale. --int8 quantizes either, calibrated\n"
        "on --calib training images (BatchNorm folded; ONNX: QuantizeLinear and\n"
        "DequantizeLinear pairs with cnnlab's scales, as onnxruntime's quantize_static\n"
        "writes them). See docs/deploy.md.",
    .options = export_options_table,
    .run = cmd_export,
};

/* "dir/name.safetensors" -> "dir/name.onnx" (int8: "dir/name.int8.onnx") */
static void default_out(const char *ck, char *buf, size_t len, bool int8) {
    const char *dot = strrchr(ck, '.'), *slash = strrchr(ck, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - ck) : strlen(ck);
    snprintf(buf, len, "%.*s%s.onnx", (int)stem, ck, int8 ? ".int8" : "");
}

static int export_onnx(const char *path, const export_options *o) {
    const int opset = atoi(o->opset);
    char out[4096];
    if (o->out) snprintf(out, sizeof out, "%s", o->out);
    else default_out(path, out, sizeof out, o->int8);
    if (o->int8) return cli_export_onnx_int8(path, o, out);
    cli_checkpoint ck;
    if (!cli_open_checkpoint(path, (cl_compile_args){.max_batch = 1, .threads = 1}, &ck)) return 1;
    char *text = NULL;
    {
        /* the model text travels in the metadata, as in the checkpoint */
        char err[1024];
        cl_safetensors *sf = cl_safetensors_read(path, err, sizeof err);
        const char *t = sf ? cl_safetensors_meta(sf, "cnnlab.model_text") : NULL;
        text = t ? strdup(t) : NULL;
        cl_safetensors_free(sf);
    }
    cl_onnx_export_args a = {.opset = opset, .mean = ck.mean, .std = ck.std,
                             .normalize = !o->no_normalize,
                             .class_names = (const char *const *)ck.class_names,
                             .model_text = text, .dataset = ck.dataset};
    char err[1024];
    int rc = 0;
    if (cl_onnx_export(ck.m, &a, out, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        rc = 1;
    } else {
        printf("Wrote %s (ONNX opset %d, %s input, %d classes)\n", out, opset,
               o->no_normalize ? "normalised" : "0..1 pixel", ck.classes);
    }
    free(text);
    cli_close_checkpoint(&ck);
    return rc;
}

static int cmd_export(int argc, char **argv) {
    export_options o = {.format = "onnx", .opset = "21", .calib = 1000};
    const char *path = NULL;
    int n = cli_parse(&export_command, &o, argc - 1, argv + 1, &path, 1);
    if (n < 0) return cli_parse_status(n);
    if (!path) {
        cli_error("export: which checkpoint?");
        cli_print_usage(&export_command, stderr);
        return EXIT_USAGE;
    }
    if (o.uint8_activations && (!o.int8 || strcmp(o.format, "onnx"))) {
        cli_error("export: --uint8-activations is for --int8 in ONNX");
        return EXIT_USAGE;
    }
    if (!strcmp(o.format, "onnx")) return export_onnx(path, &o);
    if (!o.out) {
        cli_error("export: give the output folder with -o DIR");
        cli_print_usage(&export_command, stderr);
        return EXIT_USAGE;
    }
    return cli_export_c(path, &o);
}
