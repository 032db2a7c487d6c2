/* export.c: `cnnlab export CHECKPOINT -o model.onnx [--opset 17|21] [--no-normalize]`
 * writes a trained model as an ONNX file (src/deploy/onnx_export.c) with its class
 * names, normalisation and model text in the metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *out;
    const char *format;
    long long opset;
    bool no_normalize;
} export_options;

/* The options, in the style of options.c: name, kind (s: string, i: count, f: flag),
 * where it goes, help. */
typedef struct {
    const char *name, *alias;
    char kind;
    size_t offset;
    const char *help;
} export_spec;

#define EF(field) offsetof(export_options, field)
static const export_spec export_specs[] = {
    {"out", "o", 's', EF(out), "the file to write (default: the checkpoint's name with .onnx)"},
    {"format", NULL, 's', EF(format), "onnx (default)"},
    {"opset", NULL, 'i', EF(opset), "ONNX opset: 21 (default; GroupNormalization, Gelu) or 17 "
                                    "(InstanceNormalization decomposition, for older runtimes)"},
    {"no-normalize", NULL, 'f', EF(no_normalize), "leave the input normalisation out of the graph: "
                                                  "it then takes normalised input"},
};

static void export_usage(FILE *f) {
    fprintf(f, "usage: cnnlab export CHECKPOINT [-o model.onnx] [--opset 17|21] [--no-normalize]\n"
               "Writes the model of a checkpoint as ONNX in inference form (dropout left out,\n"
               "BatchNorm with its running statistics). Input \"input\" is NCHW float32 pixels on\n"
               "the 0..1 scale, normalised inside the graph; output \"logits\" is [N, classes].\n");
    for (size_t i = 0; i < sizeof export_specs / sizeof *export_specs; i++)
        fprintf(f, "  %s%s%s--%-14s %s\n", export_specs[i].alias ? "-" : "",
                export_specs[i].alias ? export_specs[i].alias : "", export_specs[i].alias ? ", " : "    ",
                export_specs[i].name, export_specs[i].help);
}

/* Parse argv into o; returns the positional argument count (into pos) or -1 after
 * printing the error. */
static int export_parse(int argc, char **argv, export_options *o, const char **pos, int max_pos) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (npos == max_pos) {
                cli_error("export: unexpected argument '%s'", a);
                return -1;
            }
            pos[npos++] = a;
            continue;
        }
        const char *name = a + 1 + (a[1] == '-');
        const export_spec *s = NULL;
        for (size_t k = 0; k < sizeof export_specs / sizeof *export_specs; k++)
            if (!strcmp(export_specs[k].name, name) ||
                (a[1] != '-' && export_specs[k].alias && !strcmp(export_specs[k].alias, name)))
                s = &export_specs[k];
        if (!s) {
            cli_error("export: unknown or incomplete option '%s'", a);
            return -1;
        }
        char *field = (char *)o + s->offset;
        if (s->kind == 'f') {
            *(bool *)field = true;
            continue;
        }
        if (i + 1 >= argc) {
            cli_error("export: %s needs a value", a);
            return -1;
        }
        const char *v = argv[++i];
        if (s->kind == 's') {
            *(const char **)field = v;
        } else if (!cli_parse_count(v, (long long *)field)) {
            cli_error("export: %s: expected a whole number, got '%s'", a, v);
            return -1;
        }
    }
    return npos;
}

/* "dir/name.safetensors" -> "dir/name.onnx" */
static void default_out(const char *ck, char *buf, size_t len) {
    const char *dot = strrchr(ck, '.'), *slash = strrchr(ck, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - ck) : strlen(ck);
    snprintf(buf, len, "%.*s.onnx", (int)stem, ck);
}

int cmd_export(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            export_usage(stdout);
            return 0;
        }
    export_options o = {.format = "onnx", .opset = 21};
    const char *pos[1] = {NULL};
    int npos = export_parse(argc, argv, &o, pos, 1);
    if (npos != 1) {
        if (npos == 0) cli_error("export: which checkpoint?");
        export_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(o.format, "onnx")) {
        cli_error("export: unknown --format '%s' (onnx)", o.format);
        return EXIT_USAGE;
    }
    if (o.opset != 17 && o.opset != 21) {
        cli_error("export: --opset %lld: cnnlab writes opset 17 or 21", o.opset);
        return EXIT_USAGE;
    }
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
    cl_onnx_export_args a = {.opset = (int)o.opset, .mean = ck.mean, .std = ck.std,
                             .normalize = !o.no_normalize,
                             .class_names = (const char *const *)ck.class_names,
                             .model_text = text, .dataset = ck.dataset};
    char err[1024];
    int rc = 0;
    if (cl_onnx_export(ck.m, &a, out, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        rc = 1;
    } else {
        printf("Wrote %s (ONNX opset %lld, %s input, %d classes)\n", out, o.opset,
               o.no_normalize ? "normalised" : "0..1 pixel", ck.classes);
    }
    free(text);
    cli_close_checkpoint(&ck);
    return rc;
}
