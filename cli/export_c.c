/* export_c.c: `cnnlab export CHECKPOINT --format c -o DIR [--int8 [--calib N]]` writes
 * the trained network as DIR/model.c and DIR/model.h (one dependency-free C99 file,
 * float32 or int8; src/deploy/), `cnnlab export CHECKPOINT --int8` writes the int8
 * network as ONNX QuantizeLinear/DequantizeLinear pairs, and `cnnlab eval CHECKPOINT
 * --int8` measures the int8 network against the float one on the whole test split.
 * All build the int8 network the same way: calibrated on N images of the training
 * split. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "deploy/quantize.h"

/* Image i of ds as [C][H][W] floats on the 0..1 scale (the export's input). */
static void image_chw(const cl_dataset *ds, int i, float *out) {
    const size_t hw = (size_t)ds->h * ds->w;
    const uint8_t *img = ds->images + (size_t)i * hw * ds->c;
    for (int c = 0; c < ds->c; c++)
        for (size_t p = 0; p < hw; p++) out[c * hw + p] = img[p * ds->c + c] / 255.0f;
}

static bool same_input(const cli_checkpoint *ck, const cl_dataset *ds) {
    if (ds->c == ck->input.c && ds->h == ck->input.h && ds->w == ck->input.w) return true;
    cli_error("the model takes %dx%dx%d images, the dataset has %dx%dx%d", ck->input.c,
              ck->input.h, ck->input.w, ds->c, ds->h, ds->w);
    return false;
}

/* The checkpoint's inference graph. Prints the error on failure. */
static cl_deploy_graph *deploy_graph(const cli_checkpoint *ck) {
    char err[512];
    cl_deploy_graph *g = cl_deploy_build(ck->m, ck->mean, ck->std, err, sizeof err);
    if (!g) cli_error("%s", err);
    return g;
}

/* Quantize g, calibrated on `calib` images spread evenly over the training split of
 * data (the checkpoint's own dataset when NULL). Prints the error on failure. */
static cl_quant *int8_network(const cli_checkpoint *ck, const cl_deploy_graph *g,
                              const char *data, const char *data_dir, int calib) {
    if (!data) data = ck->options.data;
    if (!data_dir && ck->options.data_dir[0]) data_dir = ck->options.data_dir;
    cli_dataset_ref ref;
    cli_image_size rs = {ck->input.h, ck->input.w};
    cl_dataset train = {0};
    if (!cli_resolve_dataset(data, data_dir, &ref) ||
        !cli_load_dataset(&ref, CL_SPLIT_TRAIN, &rs, &train))
        return NULL;
    cl_quant *q = NULL;
    if (!same_input(ck, &train)) goto done;
    if (calib > train.n) calib = train.n;
    const size_t image = (size_t)train.c * train.h * train.w;
    float *images = malloc((size_t)calib * image * sizeof *images);
    if (!images) {
        cli_error("out of memory");
        goto done;
    }
    for (int i = 0; i < calib; i++)
        image_chw(&train, (int)((long long)i * train.n / calib), images + (size_t)i * image);
    char err[512];
    q = cl_quant_new(g, images, calib, err, sizeof err);
    if (!q) cli_error("%s", err);
    free(images);
done:
    cl_dataset_free(&train);
    return q;
}

/* A checkpoint opened for export: its file (for the model text), the model, its
 * deployment graph and, with int8, the quantized network. */
typedef struct {
    cl_safetensors *sf;
    cli_checkpoint ck;
    cl_deploy_graph *g;
    cl_quant *q;
} export_source;

static void close_source(export_source *src, bool opened) {
    cl_quant_free(src->q);
    cl_deploy_free(src->g);
    if (opened) cli_close_checkpoint(&src->ck);
    cl_safetensors_free(src->sf);
}

/* Open path and build its graph (and with int8, quantize it, calibrated on calib
 * training images of data); prints the error and returns false on failure, having
 * freed everything. */
static bool open_source(const char *path, bool int8, const char *data, const char *data_dir,
                        int calib, export_source *src) {
    char err[1024];
    memset(src, 0, sizeof *src);
    if (!(src->sf = cl_safetensors_read(path, err, sizeof err))) {
        cli_error("%s", err);
        return false;
    }
    if (!cli_open_checkpoint(path, (cl_compile_args){.max_batch = 1, .threads = 1}, &src->ck)) {
        close_source(src, false);
        return false;
    }
    if (!(src->g = deploy_graph(&src->ck)) ||
        (int8 && !(src->q = int8_network(&src->ck, src->g, data, data_dir, calib)))) {
        close_source(src, true);
        return false;
    }
    return true;
}

int cli_export_c(const char *path, const export_options *o) {
    const char *out = o->out;
    char err[1024];
    export_source src;
    if (!open_source(path, o->int8, o->data, o->data_dir, (int)o->calib, &src)) return 1;
    const cl_deploy_graph *g = src.g;
    const cl_quant *q = src.q;
    int rc = 1;
    if (!cli_mkdirs(out)) {
        cli_error("%s: cannot create the folder", out);
        goto done;
    }
    cl_deploy_c_info info = {path, cl_safetensors_meta(src.sf, "cnnlab.model_text"),
                             (const char *const *)src.ck.class_names};
    if (cl_deploy_write_c(g, q, out, &info, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        goto done;
    }
    size_t elem = q ? 1 : sizeof(float);
    printf("Wrote %s/model.c and %s/model.h: %s, %d steps for %d layers (%d folded away), "
           "arena %zu bytes (%zu without reuse)",
           out, out, q ? "int8" : "float32", g->nnodes, cl_model_layer_count(src.ck.m),
           g->layers_folded, g->arena * elem, g->naive * elem);
    if (q) printf(", weights %zu bytes (float32 %zu), calibrated on %d training images", q->weight_bytes,
                  cl_deploy_weight_bytes(g), q->calib_images);
    else printf(", weights %zu bytes", cl_deploy_weight_bytes(g));
    printf("\n");
    rc = 0;
done:
    close_source(&src, true);
    return rc;
}

int cli_export_onnx_int8(const char *path, const export_options *o, const char *out) {
    char err[1024];
    export_source src;
    if (!open_source(path, true, o->data, o->data_dir, (int)o->calib, &src)) return 1;
    const cli_checkpoint *ck = &src.ck;
    int rc = 1;
    const int opset = atoi(o->opset);
    cl_onnx_export_args a = {.opset = opset, .mean = ck->mean, .std = ck->std,
                             .normalize = !o->no_normalize,
                             .class_names = (const char *const *)ck->class_names,
                             .model_text = cl_safetensors_meta(src.sf, "cnnlab.model_text"),
                             .dataset = ck->dataset};
    if (cl_onnx_export_int8(src.q, &a, o->uint8_activations, out, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        goto done;
    }
    printf("Wrote %s (ONNX opset %d, int8 QuantizeLinear/DequantizeLinear%s, %s input, %d "
           "classes), calibrated on %d training images\n",
           out, opset, o->uint8_activations ? " with uint8 activations" : "",
           o->no_normalize ? "normalised" : "0..1 pixel", ck->classes, src.q->calib_images);
    rc = 0;
done:
    close_source(&src, true);
    return rc;
}

int cli_eval_int8(const cli_checkpoint *ck, const cl_dataset *test, int limit, const char *data,
                  const char *data_dir, int calib, int threads) {
    if (!same_input(ck, test)) return 1;
    const int n = limit > 0 && limit < test->n ? limit : test->n;
    cl_deploy_graph *g = deploy_graph(ck);
    if (!g) return 1;
    cl_quant *q = int8_network(ck, g, data, data_dir, calib);
    if (!q) {
        cl_deploy_free(g);
        return 1;
    }
    if (threads <= 0) threads = omp_get_num_procs();
    const size_t image = (size_t)test->c * test->h * test->w;
    long float_correct = 0, int8_correct = 0, agree = 0;
    bool oom = false;
    double t0 = now_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : float_correct, int8_correct, agree)
    {
        float *pixels = malloc(image * sizeof *pixels);
        float *arena = malloc(g->arena * sizeof *arena);
        float *logits = malloc((size_t)g->classes * sizeof *logits);
        void *work = malloc(cl_quant_workspace(q));
        if (!pixels || !arena || !logits || !work) {
#pragma omp atomic write
            oom = true;
        } else {
#pragma omp for schedule(dynamic, 16)
            for (int i = 0; i < n; i++) {
                image_chw(test, i, pixels);
                cl_deploy_forward(g, pixels, logits, arena, NULL, NULL);
                int fbest = 0;
                for (int k = 1; k < g->classes; k++)
                    if (logits[k] > logits[fbest]) fbest = k;
                int qbest = cl_quant_forward(q, pixels, logits, work);
                float_correct += fbest == test->labels[i];
                int8_correct += qbest == test->labels[i];
                agree += fbest == qbest;
            }
        }
        free(pixels);
        free(arena);
        free(logits);
        free(work);
    }
    int rc = 1;
    if (oom) {
        cli_error("out of memory");
    } else {
        double fa = 100.0 * float_correct / n, qa = 100.0 * int8_correct / n;
        printf("int8 (calibrated on %d training images; weights %zu bytes, float32 %zu):\n",
               q->calib_images, q->weight_bytes, cl_deploy_weight_bytes(g));
        printf("  float32: %ld/%d (%.2f%%)\n  int8:    %ld/%d (%.2f%%), %+.2f points; the two "
               "agree on %.2f%% of the images (%.1f s)\n",
               float_correct, n, fa, int8_correct, n, qa, qa - fa, 100.0 * agree / n,
               now_seconds() - t0);
        rc = 0;
    }
    cl_quant_free(q);
    cl_deploy_free(g);
    return rc;
}
