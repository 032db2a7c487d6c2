/* test_shard.c: the library's data-parallel hooks without MPI. Two models, each on
 * its own thread, stand for two processes: each holds a contiguous share of a batch
 * (cl_model_set_shard), and their reduce hook swaps BatchNorm's sums through shared
 * memory and adds them in "rank" order, as build/cnnlab-mpi does over MPI. The
 * shares' outputs, summed gradients and running statistics must equal, bit for
 * bit, those of one model whose 2 threads hold the same slices: with BatchNorm,
 * GroupNorm and dropout, and with a share that is empty (a batch of one sample). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { B = 7, C = 3, H = 6, W = 6, K = 4, RANKS = 2 };

static const char *const model_text =
    "input 3x6x6\n"
    "block 8 k=3 pad=1 norm=bn act=relu dropout=0.2\n"
    "block 8 k=3 pad=1 norm=gn num_groups=2 act=relu dropout=0.2\n"
    "block 8 k=3 stride=2 pad=1 norm=bn act=relu\n"
    "gap\n"
    "conv 4 k=1\n";

/* The two "processes'" meeting point for the reduce hook. */
typedef struct {
    pthread_barrier_t barrier;
    double *slot[RANKS];
    size_t n[RANKS];
} exchange;

typedef struct {
    exchange *ex;
    int rank;
} hook_ctx;

/* Replace sums with the sum over the ranks, from zero, in rank order. */
static void reduce(double *sums, size_t n, void *ctx) {
    hook_ctx *h = ctx;
    exchange *ex = h->ex;
    ex->slot[h->rank] = sums;
    ex->n[h->rank] = n;
    pthread_barrier_wait(&ex->barrier);
    double total[64];
    if (n > 64 || ex->n[0] != ex->n[1]) abort();
    for (size_t i = 0; i < n; i++) {
        total[i] = 0;
        for (int r = 0; r < RANKS; r++) total[i] += ex->slot[r][i];
    }
    pthread_barrier_wait(&ex->barrier); /* every rank has read every slot */
    memcpy(sums, total, n * sizeof *sums);
    pthread_barrier_wait(&ex->barrier);
}

static cl_model *build(int threads, hook_ctx *h) {
    char err[256];
    cl_model *m = cl_parse_model(model_text, strlen(model_text), "shard", NULL, err, sizeof err);
    cl_compile_args a = {.max_batch = B, .threads = threads, .seed = 5};
    if (h) {
        a.reduce = reduce;
        a.reduce_ctx = h;
    }
    if (!m || cl_model_compile(m, a) != CL_OK) {
        fprintf(stderr, "build: %s\n", m ? cl_model_error(m) : err);
        exit(1);
    }
    return m;
}

typedef struct {
    cl_model *m;
    const float *x, *dout;
    int first, n;
    float out[B * K];
} rank_job;

/* One training step on this rank's share: forward, backward. */
static void *run_rank(void *p) {
    rank_job *j = p;
    cl_model_set_shard(j->m, j->first);
    const float *out = cl_model_forward(j->m, j->x + (size_t)j->first * H * W * C, j->n, true);
    if (!out) abort();
    memcpy(j->out, out, (size_t)j->n * K * sizeof(float));
    cl_model_zero_grad(j->m);
    cl_model_backward(j->m, j->dout + (size_t)j->first * K);
    return NULL;
}

static void check_step(int n, int steps) {
    t_begin("shards of a batch of %d, %d steps: outputs, summed gradients, running statistics", n, steps);
    float x[B * H * W * C], dout[B * K];
    cl_model *one = build(2, NULL);
    exchange ex;
    pthread_barrier_init(&ex.barrier, NULL, RANKS);
    hook_ctx ctx[RANKS];
    rank_job job[RANKS];
    for (int r = 0; r < RANKS; r++) {
        ctx[r] = (hook_ctx){&ex, r};
        job[r].m = build(1, &ctx[r]);
    }
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < B * H * W * C; i++) x[i] = (float)((i * 37 + step * 11) % 101) / 50.0f - 1;
        for (int i = 0; i < B * K; i++) dout[i] = (float)((i * 13 + step) % 17) / 17.0f - 0.5f;
        const float *ref = cl_model_forward(one, x, n, true);
        cl_model_zero_grad(one);
        cl_model_backward(one, dout);
        pthread_t th[RANKS];
        for (int r = 0; r < RANKS; r++) {
            job[r].x = x;
            job[r].dout = dout;
            job[r].first = n * r / RANKS;
            job[r].n = n * (r + 1) / RANKS - job[r].first;
            pthread_create(&th[r], NULL, run_rank, &job[r]);
        }
        for (int r = 0; r < RANKS; r++) pthread_join(th[r], NULL);
        for (int r = 0; r < RANKS; r++)
            if (memcmp(job[r].out, ref + (size_t)job[r].first * K, (size_t)job[r].n * K * sizeof(float)))
                t_fail("step %d: rank %d's outputs differ from one process's", step, r);
        /* the gradient of the whole batch: rank 0's plus rank 1's, as model.c adds
           its threads' accumulators */
        size_t np;
        const float *g = cl_model_grads(one, &np);
        const float *g0 = cl_model_grads(job[0].m, NULL), *g1 = cl_model_grads(job[1].m, NULL);
        for (size_t i = 0; i < np; i++)
            if (g0[i] + g1[i] != g[i]) {
                t_fail("step %d: gradient %zu: %g + %g != %g", step, i, g0[i], g1[i], g[i]);
                break;
            }
        size_t nb;
        const float *b = cl_model_buffers(one, &nb);
        for (int r = 0; r < RANKS; r++)
            if (memcmp(cl_model_buffers(job[r].m, NULL), b, nb * sizeof *b))
                t_fail("step %d: rank %d's running statistics differ", step, r);
        /* the same weights for the next step on all three */
        size_t nparams;
        const float *p = cl_model_params(one, &nparams);
        for (int r = 0; r < RANKS; r++) memcpy(cl_model_params(job[r].m, NULL), p, nparams * sizeof *p);
    }
    t_end();
    for (int r = 0; r < RANKS; r++) cl_model_free(job[r].m);
    cl_model_free(one);
    pthread_barrier_destroy(&ex.barrier);
}

int main(void) {
    check_step(B, 3); /* shares of 3 and 4 */
    check_step(1, 2); /* rank 0's share is empty */
    t_begin("n = 0 needs a reduce hook");
    cl_model *m = build(1, NULL);
    float x[H * W * C] = {0};
    if (cl_model_forward(m, x, 0, true)) t_fail("a forward of 0 samples without a hook was accepted");
    cl_model_free(m);
    t_end();
    return t_finish();
}
