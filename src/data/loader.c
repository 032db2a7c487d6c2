/* loader.c: the batch loader. Worker threads prepare batches ahead of the compute:
 * they gather the epoch's shuffled samples, augment them on uint8 and normalise them
 * into channels-last floats, into a ring of `prefetch` slots the consumer takes in
 * order. What goes into batch b depends only on (seed, epoch, b): the epoch order is
 * a Fisher-Yates shuffle keyed by (seed, epoch) and each sample's augmentation is
 * keyed by (epoch, sample index), so the thread count never changes the batches.
 * With shards (data-parallel training) each process prepares only its contiguous
 * share of every batch; the shares together are exactly the whole batch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct {
    cl_real *x;      /* [batch][h][w][c] */
    int32_t *labels; /* [batch] */
    int32_t *indices;
    int n;
    int first, total; /* its place in the whole batch (shards) */
    int batch_index; /* which batch of the epoch it holds */
    int state;
} slot;

struct cl_loader {
    cl_loader_args a;
    const cl_dataset *ds;
    size_t sample_size;  /* h*w*c */
    int32_t *order;      /* [count]: the epoch's sample order */
    int count;
    int nbatches;
    int epoch;
    cl_real lut[4][256]; /* normalised value of each byte per channel (c <= 4) */
    cl_real *lut_wide;   /* [c][256] when c > 4 */
    slot *slots;
    int nslots;
    uint8_t *scratch;    /* per worker: image + augmentation scratch, 2 * sample_size */
    pthread_t *threads;
    int nworkers;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int generation; /* bumped by cl_loader_start: work for an old epoch is discarded */
    int next_prepare, next_consume, busy;
    int held; /* slot handed to the consumer, or -1 */
    int held_first, held_total; /* its span (cl_loader_span) */
    bool quit;
};

typedef struct {
    cl_loader *l;
    int id;
} worker_arg;

static const cl_real *lut_for(const cl_loader *l, int c) {
    return l->lut_wide ? l->lut_wide + (size_t)c * 256 : l->lut[c];
}

/* Gather, augment and normalise batch b of the current epoch into s. */
static void fill(cl_loader *l, int b, slot *s, uint8_t *scratch) {
    const cl_dataset *ds = l->ds;
    const int C = ds->c;
    const size_t size = l->sample_size;
    int start = b * l->a.batch;
    int total = l->count - start < l->a.batch ? l->count - start : l->a.batch;
    int lo = 0, n = total;
    if (l->a.shards > 1) {
        lo = (int)((int64_t)total * l->a.shard / l->a.shards);
        n = (int)((int64_t)total * (l->a.shard + 1) / l->a.shards) - lo;
    }
    for (int i = 0; i < n; i++) {
        int32_t idx = l->order[start + lo + i];
        const uint8_t *src = ds->images + (size_t)idx * size;
        if (l->a.aug && cl_augment_count(l->a.aug) > 0) {
            memcpy(scratch, src, size);
            uint64_t key = ((uint64_t)(uint32_t)l->epoch << 32) | (uint32_t)idx;
            cl_augment_apply(l->a.aug, scratch, ds->h, ds->w, C, l->a.seed, key, scratch + size);
            src = scratch;
        }
        cl_real *dst = s->x + (size_t)i * size;
        for (size_t p = 0; p < size; p += (size_t)C)
            for (int c = 0; c < C; c++) dst[p + c] = lut_for(l, c)[src[p + c]];
        s->labels[i] = ds->labels[idx];
        s->indices[i] = idx;
    }
    s->n = n;
    s->first = lo;
    s->total = total;
    s->batch_index = b;
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    cl_loader *l = wa->l;
    uint8_t *scratch = l->scratch + (size_t)wa->id * 2 * l->sample_size;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit &&
               !(l->next_prepare < l->nbatches && l->next_prepare < l->next_consume + l->nslots &&
                 l->slots[l->next_prepare % l->nslots].state == SLOT_FREE))
            pthread_cond_wait(&l->cond, &l->mu);
        if (l->quit) break;
        int b = l->next_prepare++;
        slot *s = &l->slots[b % l->nslots];
        s->state = SLOT_FILLING;
        int gen = l->generation;
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        fill(l, b, s, scratch);
        pthread_mutex_lock(&l->mu);
        l->busy--;
        s->state = gen == l->generation ? SLOT_READY : SLOT_FREE;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    free(wa);
    return NULL;
}

static void shuffle(cl_loader *l, int epoch) {
    for (int i = 0; i < l->count; i++) l->order[i] = l->a.subset ? l->a.subset[i] : i;
    if (!l->a.shuffle) return;
    uint64_t rng[4];
    cl_rng_seed(rng, l->a.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1)));
    for (int i = l->count - 1; i > 0; i--) {
        /* multiply-shift maps 32 random bits to [0, i] without modulo bias worth noting */
        int j = (int)(((cl_rng_next(rng) >> 32) * (uint64_t)(i + 1)) >> 32);
        int32_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

cl_loader *cl_loader_new(cl_loader_args a, char *err, size_t errlen) {
    const cl_dataset *ds = a.ds;
    if (!ds || ds->n < 1 || !ds->images) {
        snprintf(err, errlen, "the loader needs a dataset with images");
        return NULL;
    }
    if (a.batch < 1) {
        snprintf(err, errlen, "the batch size must be at least 1, got %d", a.batch);
        return NULL;
    }
    int count = a.subset ? a.nsubset : ds->n;
    for (int i = 0; a.subset && i < a.nsubset; i++)
        if (a.subset[i] < 0 || a.subset[i] >= ds->n) {
            snprintf(err, errlen, "subset index %d is outside the dataset of %d images",
                     a.subset[i], ds->n);
            return NULL;
        }
    if (count < 1 || (a.drop_last && count < a.batch)) {
        snprintf(err, errlen, "%d samples make no batch of %d", count, a.batch);
        return NULL;
    }
    if (a.shards < 0 || a.shard < 0 || (a.shards > 0 && a.shard >= a.shards)) {
        snprintf(err, errlen, "shard %d of %d does not exist", a.shard, a.shards);
        return NULL;
    }
    if (a.workers <= 0) a.workers = 1;
    if (a.prefetch <= 0) a.prefetch = 4;
    cl_loader *l = calloc(1, sizeof *l);
    if (!l) goto oom;
    l->a = a;
    l->ds = ds;
    l->count = count;
    l->nbatches = a.drop_last ? count / a.batch : (count + a.batch - 1) / a.batch;
    l->sample_size = (size_t)ds->h * ds->w * ds->c;
    l->held = -1;
    l->nslots = a.prefetch + 1; /* one is held by the consumer */
    l->order = malloc((size_t)count * sizeof *l->order);
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    l->scratch = malloc(2 * l->sample_size * (size_t)a.workers);
    l->threads = calloc((size_t)a.workers, sizeof *l->threads);
    if (ds->c > 4) l->lut_wide = malloc((size_t)ds->c * 256 * sizeof(cl_real));
    if (!l->order || !l->slots || !l->scratch || !l->threads || (ds->c > 4 && !l->lut_wide))
        goto oom;
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        s->x = malloc((size_t)a.batch * l->sample_size * sizeof(cl_real));
        s->labels = malloc((size_t)a.batch * sizeof(int32_t));
        s->indices = malloc((size_t)a.batch * sizeof(int32_t));
        if (!s->x || !s->labels || !s->indices) goto oom;
    }
    for (int c = 0; c < ds->c; c++) {
        double mean = a.mean ? a.mean[c] : 0, std = a.std ? a.std[c] : 1;
        if (!(std > 0)) {
            snprintf(err, errlen, "the std of channel %d must be positive, got %g", c, std);
            cl_loader_free(l);
            return NULL;
        }
        cl_real *lut = (cl_real *)lut_for(l, c);
        for (int v = 0; v < 256; v++) lut[v] = (cl_real)((v / 255.0 - mean) / std);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->next_prepare = l->nbatches; /* nothing to do until cl_loader_start */
    for (int i = 0; i < a.workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){l, i};
        if (!wa || pthread_create(&l->threads[i], NULL, worker_main, wa)) {
            free(wa);
            snprintf(err, errlen, "cannot start the loader's worker threads");
            cl_loader_free(l);
            return NULL;
        }
        l->nworkers++;
    }
    return l;
oom:
    snprintf(err, errlen, "out of memory for the loader's batches");
    cl_loader_free(l);
    return NULL;
}

void cl_loader_free(cl_loader *l) {
    if (!l) return;
    if (l->nworkers) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nworkers; i++) pthread_join(l->threads[i], NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cond);
    }
    for (int i = 0; l->slots && i < l->nslots; i++) {
        free(l->slots[i].x);
        free(l->slots[i].labels);
        free(l->slots[i].indices);
    }
    free(l->slots);
    free(l->order);
    free(l->scratch);
    free(l->threads);
    free(l->lut_wide);
    free(l);
}

int cl_loader_batches(const cl_loader *l) { return l->nbatches; }

void cl_loader_start(cl_loader *l, int epoch) {
    pthread_mutex_lock(&l->mu);
    l->generation++;
    while (l->busy > 0) pthread_cond_wait(&l->cond, &l->mu);
    for (int i = 0; i < l->nslots; i++) l->slots[i].state = SLOT_FREE;
    l->held = -1;
    l->epoch = epoch;
    shuffle(l, epoch);
    l->next_prepare = l->next_consume = 0;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
}

bool cl_loader_next(cl_loader *l, const cl_real **x, const int32_t **labels,
                    const int32_t **indices, int *n) {
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) {
        l->slots[l->held].state = SLOT_FREE;
        l->held = -1;
        pthread_cond_broadcast(&l->cond);
    }
    if (l->next_consume >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    int b = l->next_consume;
    slot *s = &l->slots[b % l->nslots];
    while (!(s->state == SLOT_READY && s->batch_index == b)) pthread_cond_wait(&l->cond, &l->mu);
    l->held = b % l->nslots;
    l->held_first = s->first;
    l->held_total = s->total;
    l->next_consume++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    *x = s->x;
    *labels = s->labels;
    if (indices) *indices = s->indices;
    *n = s->n;
    return true;
}

void cl_loader_span(const cl_loader *l, int *first, int *total) {
    *first = l->held_first;
    *total = l->held_total;
}
