/* dist.c: the exchanges of data-parallel training (see dist.h). With -DCNNLAB_MPI
 * (build/cnnlab-mpi) they are MPI calls on MPI_COMM_WORLD; without it, the same
 * functions for a single process. Every sum is formed in rank order by this code,
 * never by MPI's reduction operators, whose order of addition MPI leaves open: so
 * the results do not depend on timing and match a single process whose threads hold
 * the ranks' shares. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "cli.h"

#ifdef CNNLAB_MPI

#include <mpi.h>
#include <stdlib.h>
#include <time.h>

static void hex_digest(const void *data, size_t len, char hex[65]) {
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* The SHA-256 of this process's executable, so that ranks can compare builds. */
static bool binary_hash(char hex[65]) {
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f) {
        snprintf(hex, 65, "unknown");
        return false;
    }
    struct sha256_ctx ctx;
    uint8_t buf[1 << 16], digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&ctx, n, buf);
    fclose(f);
    sha256_digest(&ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return true;
}

/* The exchange state of this process (the CLI's, one per process). */
static struct {
    bool started;
    int rank, size;
    MPI_Comm exit_comm;    /* a copy of MPI_COMM_WORLD for the exit handshake only */
    MPI_Datatype real;     /* cl_real */
    int *counts, *displs;  /* [size]: gathers, and the gradient chunks' */
    int *recvcounts, *rdispls; /* [size]: the pieces of this rank's gradient chunk */
    cl_real *chunks;       /* [size][largest gradient chunk] */
    size_t chunk_cap;
    double *partials;      /* [size][largest BatchNorm reduction] */
    size_t partial_cap;
    double reduce_seconds, wait_seconds;
    long reduce_calls;
} D = {.size = 1};

bool dist_start(void) {
    int provided;
    /* Waiting ranks yield the CPU instead of spinning (unless the user chose): a
     * step meets ~20 times (BatchNorm, logits, gradients), and on a machine shared
     * with other work a spinning rank takes the time its peer needs to arrive.
     * Measured in docs/distributed.md: 80 -> 14-21 ms per step summing gradients. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    /* Only the thread that calls the library's forward and backward calls MPI (the
     * reduce hook runs on it), so FUNNELED is enough. */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        cli_error("MPI could not start");
        return false;
    }
    D.started = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.size);
    MPI_Comm_dup(MPI_COMM_WORLD, &D.exit_comm);
    /* Errors in exchanges end the job with a message rather than being returned. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    D.real = sizeof(cl_real) == sizeof(float) ? MPI_FLOAT : MPI_DOUBLE;
    if (D.rank != 0 && !freopen("/dev/null", "w", stdout)) {
        cli_error("cannot silence standard output");
        return false;
    }
    char binary[65];
    binary_hash(binary);
    return dist_same("program (the cnnlab-mpi executable)", binary, 64);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int dist_end(int rc) {
    if (!D.started) return rc;
    dist_release();
    /* Wait for every rank to arrive, sleeping between polls so that rank 0, which
     * may still be writing the report, keeps the CPU. A rank that failed on its own
     * waits a few seconds, then stops the job: the others might be blocked in an
     * exchange it will never join. */
    MPI_Request req;
    MPI_Ibarrier(D.exit_comm, &req);
    int done = 0;
    for (long waited = 0; !done; waited += 5) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (rc != 0 && waited > 3000) {
            cli_error("stopping every rank (this one failed while the others were still running)");
            fflush(stdout);
            MPI_Abort(MPI_COMM_WORLD, rc);
        }
        sleep_ms(5);
    }
    MPI_Comm_free(&D.exit_comm);
    MPI_Finalize();
    D.started = false;
    return rc;
}

int dist_rank(void) { return D.rank; }
int dist_size(void) { return D.size; }

bool dist_all_ok(bool ok) {
    if (D.size == 1) return ok;
    int mine = ok ? 1 : 0;
    int *all = malloc((size_t)D.size * sizeof *all);
    if (!all) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    bool every = true;
    for (int r = 0; r < D.size; r++) every &= all[r] != 0;
    if (!every && D.rank == 0) {
        char list[256] = "";
        size_t k = 0;
        for (int r = 0; r < D.size && k < sizeof list - 16; r++)
            if (!all[r]) k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", k ? ", " : "", r);
        fprintf(stderr, "cnnlab: rank %s failed (its message is above): every rank stops\n", list);
    }
    free(all);
    return every;
}

bool dist_any(bool flag) {
    if (D.size == 1) return flag;
    int mine = flag ? 1 : 0, any = 0;
    /* a maximum of 0s and 1s: exact whatever the order */
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any != 0;
}

bool dist_same(const char *what, const void *data, size_t len) {
    if (D.size == 1) return true;
    char mine[65], *all = malloc((size_t)D.size * 65);
    if (!all) MPI_Abort(MPI_COMM_WORLD, 1);
    hex_digest(data, len, mine);
    MPI_Allgather(mine, 65, MPI_CHAR, all, 65, MPI_CHAR, MPI_COMM_WORLD);
    bool same = true;
    for (int r = 1; r < D.size; r++)
        if (memcmp(all, all + (size_t)r * 65, 65)) {
            same = false;
            if (D.rank == 0)
                fprintf(stderr, "cnnlab: rank %d and rank 0 differ in their %s (sha256 %.12s vs %.12s): "
                        "every rank must run the same, so the job stops\n", r, what,
                        all + (size_t)r * 65, all);
        }
    free(all);
    return same;
}

bool dist_prepare(const cl_model *m, cl_compile_args *ca) {
    if (D.size == 1) return true;
    size_t np = (size_t)cl_model_param_count(m), largest = 1;
    for (int i = 0; i < cl_model_layer_count(m); i++) {
        cl_layer_info li = cl_model_layer(m, i);
        /* BatchNorm reduces 2 sums per channel and the count (batchnorm2d.c) */
        if (!strcmp(li.op, "batchnorm2d") && 2 * (size_t)li.out.c + 1 > largest)
            largest = 2 * (size_t)li.out.c + 1;
    }
    D.chunk_cap = (np + (size_t)D.size - 1) / (size_t)D.size;
    D.partial_cap = largest;
    D.counts = malloc((size_t)D.size * sizeof *D.counts);
    D.displs = malloc((size_t)D.size * sizeof *D.displs);
    D.recvcounts = malloc((size_t)D.size * sizeof *D.recvcounts);
    D.rdispls = malloc((size_t)D.size * sizeof *D.rdispls);
    D.chunks = malloc((size_t)D.size * (D.chunk_cap ? D.chunk_cap : 1) * sizeof *D.chunks);
    D.partials = malloc((size_t)D.size * largest * sizeof *D.partials);
    if (!D.counts || !D.displs || !D.recvcounts || !D.rdispls || !D.chunks || !D.partials) {
        cli_error("out of memory for the exchange buffers");
        return false;
    }
    ca->reduce = dist_sum_doubles;
    ca->reduce_ctx = NULL;
    return true;
}

void dist_release(void) {
    free(D.counts);
    free(D.displs);
    free(D.recvcounts);
    free(D.rdispls);
    free(D.chunks);
    free(D.partials);
    D.counts = D.displs = D.recvcounts = D.rdispls = NULL;
    D.chunks = NULL;
    D.partials = NULL;
}

void dist_sum_doubles(double *sums, size_t n, void *ctx) {
    (void)ctx;
    if (n > D.partial_cap) {
        cli_error("internal error: a reduction of %zu values exceeds the %zu planned", n, D.partial_cap);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Allgather(sums, (int)n, MPI_DOUBLE, D.partials, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    /* from zero, rank by rank: what the threads of one process do (cl_team_sum) */
    for (size_t i = 0; i < n; i++) sums[i] = 0;
    for (int r = 0; r < D.size; r++) {
        const double *p = D.partials + (size_t)r * n;
        for (size_t i = 0; i < n; i++) sums[i] += p[i];
    }
}

/* Rank r's chunk of n values: [n*r/size, n*(r+1)/size). */
static size_t chunk_start(size_t n, int r) { return n * (size_t)r / (size_t)D.size; }

void dist_sum_grads(cl_real *g, size_t n) {
    if (D.size == 1) return;
    /* the barrier separates waiting for the slowest rank from the exchange itself */
    double t0 = MPI_Wtime();
    MPI_Barrier(MPI_COMM_WORLD);
    double t1 = MPI_Wtime();
    D.wait_seconds += t1 - t0;
    size_t lo = chunk_start(n, D.rank), mine = chunk_start(n, D.rank + 1) - lo;
    for (int r = 0; r < D.size; r++) {
        D.counts[r] = (int)(chunk_start(n, r + 1) - chunk_start(n, r));
        D.displs[r] = (int)chunk_start(n, r);
        D.recvcounts[r] = (int)mine;
        D.rdispls[r] = (int)((size_t)r * D.chunk_cap);
    }
    /* every rank's piece of my chunk, then their sum in rank order, as model.c adds
     * the threads' accumulators: the first, plus the second, plus ... */
    MPI_Alltoallv(g, D.counts, D.displs, D.real, D.chunks, D.recvcounts, D.rdispls, D.real,
                  MPI_COMM_WORLD);
    cl_real *out = g + lo;
    memcpy(out, D.chunks, mine * sizeof *out);
    for (int r = 1; r < D.size; r++) {
        const cl_real *p = D.chunks + (size_t)r * D.chunk_cap;
        for (size_t i = 0; i < mine; i++) out[i] += p[i];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, D.real, g, D.counts, D.displs, D.real, MPI_COMM_WORLD);
    D.reduce_seconds += MPI_Wtime() - t1;
    D.reduce_calls++;
}

double dist_reduce_seconds(long *calls, double *wait_seconds) {
    *calls = D.reduce_calls;
    *wait_seconds = D.wait_seconds;
    return D.reduce_seconds;
}

static void row_split(int total, int width) {
    for (int r = 0; r < D.size; r++) {
        int lo = (int)((int64_t)total * r / D.size), hi = (int)((int64_t)total * (r + 1) / D.size);
        D.counts[r] = (hi - lo) * width;
        D.displs[r] = lo * width;
    }
}

void dist_gather_rows(const cl_real *mine, int total, int width, cl_real *all) {
    if (D.size == 1) {
        if (all != mine) memcpy(all, mine, (size_t)total * width * sizeof *all);
        return;
    }
    row_split(total, width);
    if (D.counts[D.rank])
        memcpy(all + D.displs[D.rank], mine, (size_t)D.counts[D.rank] * sizeof *all);
    MPI_Allgatherv(MPI_IN_PLACE, 0, D.real, all, D.counts, D.displs, D.real, MPI_COMM_WORLD);
}

void dist_gather_labels(const int32_t *mine, int total, int32_t *all) {
    if (D.size == 1) {
        if (all != mine) memcpy(all, mine, (size_t)total * sizeof *all);
        return;
    }
    row_split(total, 1);
    if (D.counts[D.rank]) memcpy(all + D.displs[D.rank], mine, (size_t)D.counts[D.rank] * sizeof *all);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_INT32_T, all, D.counts, D.displs, MPI_INT32_T, MPI_COMM_WORLD);
}

#else /* one process */

bool dist_start(void) { return true; }
int dist_end(int rc) { return rc; }
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
bool dist_all_ok(bool ok) { return ok; }
bool dist_any(bool flag) { return flag; }
bool dist_same(const char *what, const void *data, size_t len) {
    (void)what, (void)data, (void)len;
    return true;
}
bool dist_prepare(const cl_model *m, cl_compile_args *ca) {
    (void)m, (void)ca;
    return true;
}
void dist_release(void) {}
void dist_sum_doubles(double *sums, size_t n, void *ctx) { (void)sums, (void)n, (void)ctx; }
void dist_sum_grads(cl_real *g, size_t n) { (void)g, (void)n; }
double dist_reduce_seconds(long *calls, double *wait_seconds) {
    *calls = 0;
    *wait_seconds = 0;
    return 0;
}
void dist_gather_rows(const cl_real *mine, int total, int width, cl_real *all) {
    if (all != mine) memcpy(all, mine, (size_t)total * width * sizeof *all);
}
void dist_gather_labels(const int32_t *mine, int total, int32_t *all) {
    if (all != mine) memcpy(all, mine, (size_t)total * sizeof *all);
}

#endif
