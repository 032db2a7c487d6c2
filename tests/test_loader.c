/* test_loader.c: the batch loader on a synthetic dataset: every sample exactly once
 * per epoch, shuffled from the seed (another epoch or seed gives another order, the
 * same seed the same one), a last partial batch or none (drop_last), subsets,
 * normalisation values, and identical batches, augmentation included, whatever the
 * number of worker threads and prefetched batches. Also starting a new epoch in the
 * middle of one (as an interrupted run does). Shards (the ranks of data-parallel
 * training) put together give exactly the whole batches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { N = 203, H = 6, W = 5, C = 3, CLASSES = 7 };

static cl_dataset make_dataset(void) {
    cl_dataset ds = {.n = N, .c = C, .h = H, .w = W, .classes = CLASSES};
    ds.images = xmalloc((size_t)N * H * W * C);
    ds.labels = xmalloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        ds.labels[i] = i % CLASSES;
        for (int p = 0; p < H * W * C; p++) ds.images[(size_t)i * H * W * C + p] = (uint8_t)((i * 7 + p * 13) & 0xff);
    }
    return ds;
}

/* One epoch's batches, concatenated: x values, labels and indices. */
typedef struct {
    float *x;
    int32_t *labels, *idx;
    int n, batches, last;
} epoch_data;

static epoch_data run_epoch(cl_loader *l, int epoch) {
    epoch_data e = {0};
    e.x = xmalloc((size_t)N * H * W * C * sizeof(float));
    e.labels = xmalloc(N * sizeof(int32_t));
    e.idx = xmalloc(N * sizeof(int32_t));
    cl_loader_start(l, epoch);
    const float *x;
    const int32_t *labels, *idx;
    int n;
    while (cl_loader_next(l, &x, &labels, &idx, &n)) {
        memcpy(e.x + (size_t)e.n * H * W * C, x, (size_t)n * H * W * C * sizeof(float));
        memcpy(e.labels + e.n, labels, (size_t)n * sizeof(int32_t));
        memcpy(e.idx + e.n, idx, (size_t)n * sizeof(int32_t));
        e.n += n;
        e.batches++;
        e.last = n;
    }
    return e;
}

static void free_epoch(epoch_data *e) {
    free(e->x);
    free(e->labels);
    free(e->idx);
}

static bool same_epoch(const epoch_data *a, const epoch_data *b) {
    return a->n == b->n && !memcmp(a->idx, b->idx, (size_t)a->n * sizeof(int32_t)) &&
           !memcmp(a->x, b->x, (size_t)a->n * H * W * C * sizeof(float));
}

int main(void) {
    cl_dataset ds = make_dataset();
    char err[256];
    const float mean[C] = {0.5f, 0.25f, 0.0f}, std[C] = {0.5f, 0.25f, 2.0f};
    cl_augment *aug = cl_augment_new();
    if (cl_augment_parse(aug, "crop:2:reflect,hflip,cutout:2", err, sizeof err) != CL_OK) {
        printf("FAIL - augment spec: %s\n", err);
        return 1;
    }

    t_begin("loader: every sample once per epoch, labels and normalisation match");
    cl_loader_args a = {.ds = &ds, .batch = 16, .shuffle = true, .seed = 42, .mean = mean, .std = std,
                        .workers = 1, .prefetch = 2};
    cl_loader *l = cl_loader_new(a, err, sizeof err);
    if (!l) {
        t_fail("%s", err);
        t_end();
        return t_finish();
    }
    epoch_data e0 = run_epoch(l, 0);
    int *seen = calloc(N, sizeof *seen);
    for (int i = 0; i < e0.n; i++) seen[e0.idx[i]]++;
    for (int i = 0; i < N; i++)
        if (seen[i] != 1) {
            t_fail("sample %d seen %d times", i, seen[i]);
            break;
        }
    if (e0.batches != 13 || e0.last != 203 - 12 * 16) t_fail("%d batches, last of %d", e0.batches, e0.last);
    for (int i = 0; i < e0.n; i++) {
        int k = e0.idx[i];
        if (e0.labels[i] != ds.labels[k]) t_fail("label of sample %d", k);
        for (int p = 0; p < H * W * C; p++) {
            float want = (float)((ds.images[(size_t)k * H * W * C + p] / 255.0 - mean[p % C]) / std[p % C]);
            if (fabsf(e0.x[(size_t)i * H * W * C + p] - want) > 1e-6f) {
                t_fail("sample %d value %d: %g, expected %g", k, p, e0.x[(size_t)i * H * W * C + p], want);
                i = e0.n;
                break;
            }
        }
    }
    bool sorted = true;
    for (int i = 1; i < e0.n; i++) sorted &= e0.idx[i] > e0.idx[i - 1];
    if (sorted) t_fail("the epoch is not shuffled");
    t_end();

    t_begin("loader: the order depends on the epoch and the seed only");
    epoch_data e1 = run_epoch(l, 1), e0b = run_epoch(l, 0);
    if (same_epoch(&e0, &e1)) t_fail("epochs 0 and 1 have the same order");
    if (!same_epoch(&e0, &e0b)) t_fail("epoch 0 twice differs");
    cl_loader_free(l);
    a.seed = 43;
    l = cl_loader_new(a, err, sizeof err);
    epoch_data s43 = run_epoch(l, 0);
    if (same_epoch(&e0, &s43)) t_fail("seeds 42 and 43 give the same order");
    cl_loader_free(l);
    free_epoch(&e1);
    free_epoch(&e0b);
    free_epoch(&s43);
    t_end();

    t_begin("loader: the same batches, augmented, whatever the workers and prefetch");
    a.seed = 42;
    a.aug = aug;
    epoch_data ref = {0};
    const int workers[] = {1, 2, 4}, prefetch[] = {1, 3, 8};
    for (int k = 0; k < 3; k++) {
        a.workers = workers[k];
        a.prefetch = prefetch[k];
        l = cl_loader_new(a, err, sizeof err);
        epoch_data e = run_epoch(l, 3);
        if (k == 0) ref = e;
        else {
            if (!same_epoch(&ref, &e)) t_fail("%d workers / prefetch %d differ from 1 / 1", workers[k], prefetch[k]);
            free_epoch(&e);
        }
        cl_loader_free(l);
    }
    if (same_epoch(&ref, &e0)) t_fail("augmentation changed nothing");
    free_epoch(&ref);
    t_end();

    t_begin("loader: a new epoch started mid-epoch, drop_last, subsets, no shuffle");
    a.aug = NULL;
    a.workers = 2;
    l = cl_loader_new(a, err, sizeof err);
    cl_loader_start(l, 0);
    const float *x;
    const int32_t *labels, *idx;
    int n;
    for (int b = 0; b < 3; b++) cl_loader_next(l, &x, &labels, &idx, &n);
    epoch_data again = run_epoch(l, 0);
    if (!same_epoch(&again, &e0)) t_fail("an epoch restarted after 3 batches differs");
    free_epoch(&again);
    cl_loader_free(l);
    a.drop_last = true;
    l = cl_loader_new(a, err, sizeof err);
    epoch_data dl = run_epoch(l, 0);
    if (dl.batches != 12 || dl.n != 192) t_fail("drop_last: %d batches of %d samples", dl.batches, dl.n);
    free_epoch(&dl);
    cl_loader_free(l);
    int32_t subset[5] = {7, 3, 200, 11, 0};
    a.drop_last = false;
    a.shuffle = false;
    a.subset = subset;
    a.nsubset = 5;
    a.batch = 2;
    l = cl_loader_new(a, err, sizeof err);
    epoch_data sub = run_epoch(l, 0);
    if (sub.n != 5 || memcmp(sub.idx, subset, sizeof subset)) t_fail("subset without shuffle not in order");
    free_epoch(&sub);
    cl_loader_free(l);
    int32_t bad[1] = {N};
    a.subset = bad;
    a.nsubset = 1;
    if (cl_loader_new(a, err, sizeof err) || !strstr(err, "outside the dataset")) t_fail("a bad subset index: %s", err);
    a.subset = NULL;
    a.batch = 0;
    if (cl_loader_new(a, err, sizeof err) || !strstr(err, "batch size")) t_fail("batch 0: %s", err);
    t_end();

    t_begin("loader: shards of every batch (data-parallel ranks) make the whole batch, in order");
    cl_loader_args sa = {.ds = &ds, .batch = 16, .shuffle = true, .seed = 7, .aug = aug,
                         .mean = mean, .std = std, .workers = 2};
    cl_loader *whole = cl_loader_new(sa, err, sizeof err);
    epoch_data all = run_epoch(whole, 2);
    cl_loader_free(whole);
    for (int shards = 2; shards <= 3; shards++) {
        cl_loader *part[3];
        for (int k = 0; k < shards; k++) {
            sa.shard = k;
            sa.shards = shards;
            part[k] = cl_loader_new(sa, err, sizeof err);
            cl_loader_start(part[k], 2);
        }
        epoch_data cat = {0};
        cat.x = xmalloc((size_t)N * H * W * C * sizeof(float));
        cat.idx = xmalloc(N * sizeof(int32_t));
        for (int b = 0; b * 16 < N; b++) {
            int total = N - b * 16 < 16 ? N - b * 16 : 16;
            for (int k = 0; k < shards; k++) {
                const float *x;
                const int32_t *labels, *idx;
                int n, first, whole_n;
                if (!cl_loader_next(part[k], &x, &labels, &idx, &n)) {
                    t_fail("%d shards: shard %d ended early", shards, k);
                    break;
                }
                cl_loader_span(part[k], &first, &whole_n);
                if (first != total * k / shards || whole_n != total || n != total * (k + 1) / shards - first)
                    t_fail("%d shards: batch %d shard %d spans %d+%d of %d", shards, b, k, first, n, whole_n);
                if (cat.n + n > N) break;
                memcpy(cat.x + (size_t)cat.n * H * W * C, x, (size_t)n * H * W * C * sizeof(float));
                memcpy(cat.idx + cat.n, idx, (size_t)n * sizeof(int32_t));
                cat.n += n;
            }
        }
        if (!same_epoch(&all, &cat)) t_fail("%d shards: the batches put together differ from the whole", shards);
        for (int k = 0; k < shards; k++) cl_loader_free(part[k]);
        free(cat.x);
        free(cat.idx);
    }
    sa.shard = 2;
    sa.shards = 2;
    if (cl_loader_new(sa, err, sizeof err) || !strstr(err, "shard 2 of 2")) t_fail("shard 2 of 2: %s", err);
    free_epoch(&all);
    t_end();

    free_epoch(&e0);
    free(seen);
    cl_augment_free(aug);
    free(ds.images);
    free(ds.labels);
    return t_finish();
}
