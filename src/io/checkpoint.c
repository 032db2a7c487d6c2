/* checkpoint.c: saving and loading a model (and optionally its optimizer state) as a
 * safetensors file with PyTorch state_dict names and layouts: `layers.I.weight`, ...,
 * float32, and num_batches_tracked as int64, as torch.nn.BatchNorm2d keeps it. The
 * optimizer state, when saved, sits beside them under `optimizer.` (flat, in the
 * library's parameter layout); PyTorch users load the weights with
 * load_state_dict({k: v for k, v in sd.items() if k.startswith("layers.")}).
 * An optimizer with a moving average of the weights adds optimizer.ema_other (the
 * flat parameters then buffers that are not in the model's tensors) and
 * optimizer.ema_state (int64: the updates made, and 1 when the model's tensors hold
 * the average, so that the other values are the raw weights). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

static const char *real_dtype(void) { return sizeof(cl_real) == 4 ? "F32" : "F64"; }

/* The index of the first NaN or Inf among n values, or -1. */
static long first_non_finite_real(const cl_real *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long)i;
    return -1;
}

static bool is_counter(const cl_tensor_info *info) {
    size_t n = strlen(info->name), k = strlen("num_batches_tracked");
    return n >= k && !strcmp(info->name + n - k, "num_batches_tracked");
}

cl_status cl_model_save(const cl_model *m, cl_optimizer *o, const char *path,
                        const char *const *meta, int nmeta, char *err, size_t errlen) {
    if (!m->compiled) {
        snprintf(err, errlen, "%s: compile the model before saving it", path);
        return CL_ERR_STATE;
    }
    int nt = cl_model_tensor_count(m);
    cl_st_tensor *ts = calloc((size_t)nt + 5, sizeof *ts);
    void **bufs = calloc((size_t)nt, sizeof *bufs);
    cl_status st = CL_OK;
    if (!ts || !bufs) {
        snprintf(err, errlen, "%s: out of memory", path);
        st = CL_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        cl_tensor_info info = cl_model_tensor(m, i);
        cl_st_tensor *t = &ts[i];
        snprintf(t->name, sizeof t->name, "%s", info.name);
        t->ndim = info.ndim;
        memcpy(t->dims, info.dims, sizeof info.dims);
        cl_real *vals = malloc((size_t)info.numel * sizeof(cl_real));
        bufs[i] = vals;
        if (!vals) {
            snprintf(err, errlen, "%s: out of memory", path);
            st = CL_ERR_NOMEM;
            goto done;
        }
        cl_model_get_tensor(m, i, vals);
        /* A diverged model is never saved: a file of NaNs would pass for a checkpoint. */
        long bad = first_non_finite_real(vals, (size_t)info.numel);
        if (bad >= 0) {
            snprintf(err, errlen, "%s: not saved: tensor %s holds %s (element %ld): the weights "
                     "diverged", path, info.name, isnan(vals[bad]) ? "NaN" : "Inf", bad);
            st = CL_ERR_STATE;
            goto done;
        }
        if (is_counter(&info)) {
            /* num_batches_tracked: an int64 scalar in PyTorch */
            int64_t *c = malloc(sizeof *c);
            if (!c) {
                snprintf(err, errlen, "%s: out of memory", path);
                st = CL_ERR_NOMEM;
                goto done;
            }
            *c = (int64_t)vals[0];
            free(vals);
            bufs[i] = c;
            snprintf(t->dtype, sizeof t->dtype, "I64");
            t->data = c;
            t->nbytes = sizeof *c;
        } else {
            snprintf(t->dtype, sizeof t->dtype, "%s", real_dtype());
            t->data = vals;
            t->nbytes = (size_t)info.numel * sizeof(cl_real);
        }
    }
    int n = nt;
    int64_t step = 0, ema_state[2] = {0, 0};
    if (o) {
        cl_real *b1, *b2;
        size_t np = cl_optimizer_state(o, &b1, &b2, &step);
        const char *names[2] = {"optimizer.buf1", "optimizer.buf2"};
        cl_real *bs[2] = {b1, b2};
        for (int k = 0; k < 2; k++) {
            if (!bs[k]) continue;
            long bad = first_non_finite_real(bs[k], np);
            if (bad >= 0) {
                snprintf(err, errlen, "%s: not saved: %s holds %s (element %ld): the training "
                         "diverged", path, names[k], isnan(bs[k][bad]) ? "NaN" : "Inf", bad);
                st = CL_ERR_STATE;
                goto done;
            }
            cl_st_tensor *t = &ts[n++];
            snprintf(t->name, sizeof t->name, "%s", names[k]);
            snprintf(t->dtype, sizeof t->dtype, "%s", real_dtype());
            t->ndim = 1;
            t->dims[0] = (int64_t)np;
            t->data = bs[k];
            t->nbytes = np * sizeof(cl_real);
        }
        size_t na;
        bool in_model;
        cl_real *avg = cl_optimizer_average_state(o, &na, &ema_state[0], &in_model);
        ema_state[1] = in_model;
        if (avg) {
            long bad = first_non_finite_real(avg, na);
            if (bad >= 0) {
                snprintf(err, errlen, "%s: not saved: optimizer.ema_other holds %s (element %ld): "
                         "the training diverged", path, isnan(avg[bad]) ? "NaN" : "Inf", bad);
                st = CL_ERR_STATE;
                goto done;
            }
            cl_st_tensor *t = &ts[n++];
            snprintf(t->name, sizeof t->name, "optimizer.ema_other");
            snprintf(t->dtype, sizeof t->dtype, "%s", real_dtype());
            t->ndim = 1;
            t->dims[0] = (int64_t)na;
            t->data = avg;
            t->nbytes = na * sizeof(cl_real);
            t = &ts[n++];
            snprintf(t->name, sizeof t->name, "optimizer.ema_state");
            snprintf(t->dtype, sizeof t->dtype, "I64");
            t->ndim = 1;
            t->dims[0] = 2;
            t->data = ema_state;
            t->nbytes = sizeof ema_state;
        }
        cl_st_tensor *t = &ts[n++];
        snprintf(t->name, sizeof t->name, "optimizer.step");
        snprintf(t->dtype, sizeof t->dtype, "I64");
        t->ndim = 1;
        t->dims[0] = 1;
        t->data = &step;
        t->nbytes = sizeof step;
    }
    st = cl_safetensors_write(path, ts, n, meta, nmeta, err, errlen);
done:
    for (int i = 0; bufs && i < nt; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    return st;
}

/* The element size of a stored tensor's dtype; whether it holds exactly count values. */
static size_t elem_size(const cl_st_tensor *t) {
    if (!strcmp(t->dtype, "F32") || !strcmp(t->dtype, "I32")) return 4;
    if (!strcmp(t->dtype, "F64") || !strcmp(t->dtype, "I64")) return 8;
    return 0;
}

static bool holds(const cl_st_tensor *t, size_t count) {
    return t && elem_size(t) && t->nbytes == count * elem_size(t);
}

/* Copy a stored tensor into dst (count values) converting F32/F64/I32/I64 to cl_real. */
static bool read_values(const cl_st_tensor *t, cl_real *dst, size_t count) {
    if (!holds(t, count)) return false;
    size_t es = elem_size(t);
    const uint8_t *p = t->data;
    for (size_t i = 0; i < count; i++, p += es) {
        if (!strcmp(t->dtype, "F32")) {
            float v;
            memcpy(&v, p, 4);
            dst[i] = (cl_real)v;
        } else if (!strcmp(t->dtype, "F64")) {
            double v;
            memcpy(&v, p, 8);
            dst[i] = (cl_real)v;
        } else if (!strcmp(t->dtype, "I64")) {
            int64_t v;
            memcpy(&v, p, 8);
            dst[i] = (cl_real)v;
        } else {
            int32_t v;
            memcpy(&v, p, 4);
            dst[i] = (cl_real)v;
        }
    }
    return true;
}

/* The index of a stored tensor's first NaN or Inf (F32/F64), or -1 when all are finite;
 * its value into *bad. */
static long long first_non_finite(const cl_st_tensor *t, double *bad) {
    size_t es = elem_size(t);
    bool f32 = !strcmp(t->dtype, "F32");
    if (!f32 && strcmp(t->dtype, "F64")) return -1;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes / es; i++, p += es) {
        double v;
        if (f32) {
            float x;
            memcpy(&x, p, 4);
            v = x;
        } else {
            memcpy(&v, p, 8);
        }
        if (!isfinite(v)) {
            *bad = v;
            return (long long)i;
        }
    }
    return -1;
}

/* Whether t holds only finite values; else a message naming it. */
static bool all_finite(const char *path, const cl_st_tensor *t, char *err, size_t errlen) {
    double bad = 0;
    long long at = first_non_finite(t, &bad);
    if (at < 0) return true;
    snprintf(err, errlen, "%s: tensor %s holds %s at index %lld: the run that saved it diverged, "
             "and these weights cannot be used", path, t->name,
             isnan(bad) ? "NaN" : bad > 0 ? "Inf (not finite)" : "-Inf (not finite)", at);
    return false;
}

/* The optimizer's step count, exactly (a float would round counts above 2^24). */
static bool read_step(const cl_st_tensor *t, int64_t *step) {
    if (!holds(t, 1)) return false;
    if (!strcmp(t->dtype, "I64")) {
        memcpy(step, t->data, 8);
    } else if (!strcmp(t->dtype, "I32")) {
        int32_t v;
        memcpy(&v, t->data, 4);
        *step = v;
    } else {
        cl_real v;
        read_values(t, &v, 1);
        if (!(v >= 0 && v < 9e18)) return false;
        *step = (int64_t)v;
    }
    return *step >= 0;
}

cl_status cl_model_load(cl_model *m, cl_optimizer *o, const char *path, char *err, size_t errlen) {
    if (!m->compiled) {
        snprintf(err, errlen, "%s: compile the model before loading weights into it", path);
        return CL_ERR_STATE;
    }
    cl_safetensors *sf = cl_safetensors_read(path, err, errlen);
    if (!sf) return CL_ERR_FORMAT;
    cl_status st = CL_OK;
    int nt = cl_model_tensor_count(m);
    /* Check everything, the optimizer state included, before changing anything, so a
     * bad file leaves the model and the optimizer as they were. */
    size_t maxn = 1;
    for (int i = 0; i < nt; i++) {
        cl_tensor_info info = cl_model_tensor(m, i);
        const cl_st_tensor *t = cl_safetensors_find(sf, info.name);
        bool shape_ok = t && t->ndim == info.ndim;
        for (int d = 0; shape_ok && d < info.ndim; d++) shape_ok = t->dims[d] == info.dims[d];
        if (!t) {
            snprintf(err, errlen, "%s: no tensor %s: the file was saved from a different model",
                     path, info.name);
            st = CL_ERR_FORMAT;
            goto done;
        }
        if (!shape_ok || !holds(t, (size_t)info.numel)) {
            snprintf(err, errlen, "%s: tensor %s has another shape than the model's: the file was "
                     "saved from a different model", path, info.name);
            st = CL_ERR_FORMAT;
            goto done;
        }
        if (!all_finite(path, t, err, errlen)) {
            st = CL_ERR_FORMAT;
            goto done;
        }
        if ((size_t)info.numel > maxn) maxn = (size_t)info.numel;
    }
    cl_real *b1 = NULL, *b2 = NULL;
    const cl_st_tensor *t1 = NULL, *t2 = NULL;
    int64_t step = 0, ema_state[2] = {0, 0};
    size_t np = 0, navg = 0;
    cl_real *avg = NULL;
    const cl_st_tensor *ta = NULL;
    if (o) {
        int64_t now;
        np = cl_optimizer_state(o, &b1, &b2, &now);
        t1 = cl_safetensors_find(sf, "optimizer.buf1");
        t2 = cl_safetensors_find(sf, "optimizer.buf2");
        const cl_st_tensor *ts = cl_safetensors_find(sf, "optimizer.step");
        if (!t1 || !ts || (b2 && !t2)) {
            snprintf(err, errlen, "%s: no optimizer state for this optimizer (a `best` checkpoint "
                     "holds weights only; resume from `last`)", path);
            st = CL_ERR_FORMAT;
            goto done;
        }
        if (!holds(t1, np) || (b2 && !holds(t2, np)) || !read_step(ts, &step)) {
            snprintf(err, errlen, "%s: the optimizer state does not fit this model's %zu "
                     "parameters (or its step is not a count)", path, np);
            st = CL_ERR_FORMAT;
            goto done;
        }
        if (!all_finite(path, t1, err, errlen) || (b2 && !all_finite(path, t2, err, errlen))) {
            st = CL_ERR_FORMAT;
            goto done;
        }
        bool in_model;
        avg = cl_optimizer_average_state(o, &navg, &ema_state[0], &in_model);
        if (avg) {
            ta = cl_safetensors_find(sf, "optimizer.ema_other");
            const cl_st_tensor *te = cl_safetensors_find(sf, "optimizer.ema_state");
            bool counts = te && holds(te, 2) && !strcmp(te->dtype, "I64");
            if (counts) memcpy(ema_state, te->data, sizeof ema_state);
            if (!ta || !te) {
                snprintf(err, errlen, "%s: no moving average of the weights (optimizer.ema_other): "
                         "the run that saved it did not use --ema", path);
                st = CL_ERR_FORMAT;
                goto done;
            }
            if (!holds(ta, navg) || !counts || ema_state[0] < 0 || ema_state[1] < 0 || ema_state[1] > 1) {
                snprintf(err, errlen, "%s: the moving average does not fit this model's %zu "
                         "parameters and buffers (or optimizer.ema_state is not two int64 counts)",
                         path, navg);
                st = CL_ERR_FORMAT;
                goto done;
            }
            if (!all_finite(path, ta, err, errlen)) {
                st = CL_ERR_FORMAT;
                goto done;
            }
        }
    }
    cl_real *vals = malloc(maxn * sizeof(cl_real));
    if (!vals) {
        snprintf(err, errlen, "%s: out of memory", path);
        st = CL_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        cl_tensor_info info = cl_model_tensor(m, i);
        read_values(cl_safetensors_find(sf, info.name), vals, (size_t)info.numel);
        cl_model_set_tensor(m, i, vals);
    }
    free(vals);
    if (o) {
        read_values(t1, b1, np);
        if (b2) read_values(t2, b2, np);
        cl_optimizer_set_state_step(o, step);
        if (avg) {
            read_values(ta, avg, navg);
            cl_optimizer_set_average_state(o, ema_state[0], ema_state[1] != 0);
        }
    }
done:
    cl_safetensors_free(sf);
    return st;
}
