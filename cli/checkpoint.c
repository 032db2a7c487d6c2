/* checkpoint.c: opening a checkpoint written by `cnnlab train` for eval, predict and
 * report: its metadata (model text, dataset, class names, normalisation) and the
 * model rebuilt from the text with the weights loaded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_open_checkpoint(const char *path, cl_compile_args ca, cli_checkpoint *ck) {
    memset(ck, 0, sizeof *ck);
    char err[1024];
    cl_safetensors *sf = cl_safetensors_read(path, err, sizeof err);
    if (!sf) {
        cli_error("%s", err);
        return false;
    }
    const char *text = cl_safetensors_meta(sf, "cnnlab.model_text");
    const char *classes = cl_safetensors_meta(sf, "cnnlab.classes");
    const char *dataset = cl_safetensors_meta(sf, "cnnlab.dataset");
    const char *options = cl_safetensors_meta(sf, "cnnlab.options");
    if (!text || !classes || !dataset) {
        cli_error("%s: no cnnlab metadata (model text, classes): it was not written by `cnnlab "
                  "train`; load such weights with `cnnlab train MODEL --init %s`", path, path);
        cl_safetensors_free(sf);
        return false;
    }
    snprintf(ck->dataset, sizeof ck->dataset, "%s", dataset);
    train_options_defaults(&ck->options);
    if (options) train_options_read(&ck->options, options);
    ck->m = cl_parse_model(text, strlen(text), path, NULL, err, sizeof err);
    if (!ck->m) {
        fprintf(stderr, "%s\n", err);
        cl_safetensors_free(sf);
        return false;
    }
    ck->input = cl_model_shape(ck->m, 0);
    /* class names, one a line */
    ck->classes = cl_model_shape(ck->m, cl_model_output(ck->m)).c;
    ck->class_names = calloc((size_t)ck->classes, sizeof *ck->class_names);
    const char *s = classes;
    for (int k = 0; k < ck->classes && ck->class_names; k++) {
        size_t len = strcspn(s, "\n");
        ck->class_names[k] = strndup(s, len);
        s += len + (s[len] == '\n');
    }
    bool ok = ck->class_names &&
              cli_meta_floats(cl_safetensors_meta(sf, "cnnlab.mean"), ck->mean, ck->input.c) &&
              cli_meta_floats(cl_safetensors_meta(sf, "cnnlab.std"), ck->std, ck->input.c);
    cl_safetensors_free(sf);
    if (!ok) {
        cli_error("%s: incomplete cnnlab metadata: cnnlab.mean and cnnlab.std must hold %d "
                  "numbers each", path, ck->input.c);
        cli_close_checkpoint(ck);
        return false;
    }
    /* The normalisation divides by std: every command refuses what training never writes. */
    for (int c = 0; c < ck->input.c; c++)
        if (!(ck->std[c] > 0) || !isfinite(ck->std[c]) || !isfinite(ck->mean[c])) {
            cli_error("%s: the stored normalisation of channel %d (mean %g, std %g) is not "
                      "usable: std must be positive and both finite (a damaged or edited "
                      "checkpoint)", path, c, ck->mean[c], ck->std[c]);
            cli_close_checkpoint(ck);
            return false;
        }
    if (cl_model_compile(ck->m, ca) != CL_OK) {
        cli_error("%s", cl_model_error(ck->m));
        cli_close_checkpoint(ck);
        return false;
    }
    if (cl_model_load(ck->m, NULL, path, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        cli_close_checkpoint(ck);
        return false;
    }
    return true;
}

void cli_close_checkpoint(cli_checkpoint *ck) {
    for (int k = 0; ck->class_names && k < ck->classes; k++) free(ck->class_names[k]);
    free(ck->class_names);
    cl_model_free(ck->m);
    memset(ck, 0, sizeof *ck);
}

void cli_normalise(const cli_checkpoint *ck, const uint8_t *img, size_t npix, cl_real *out) {
    const int C = ck->input.c;
    for (size_t p = 0; p < npix; p++)
        for (int c = 0; c < C; c++)
            out[p * C + c] = (cl_real)((img[p * C + c] / 255.0 - ck->mean[c]) / ck->std[c]);
}
