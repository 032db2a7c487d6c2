/* dist.h: data-parallel training across processes for `cnnlab train`. build/cnnlab-mpi
 * (`make mpi`) compiles dist.c with -DCNNLAB_MPI and talks MPI; the plain build gets
 * the one-process versions of the same calls (rank 0 of 1, and every exchange a copy
 * or nothing), so train.c reads the same in both. The library never communicates: it
 * calls dist_sum_doubles through the reduce hook of cl_compile_args.
 *
 * Every call below except dist_rank, dist_size and dist_reduce_seconds is collective:
 * all ranks make it, in the same order. */
#ifndef CNNLAB_DIST_H
#define CNNLAB_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnnlab.h"

/* Start (MPI_Init): ranks other than 0 send their standard output to /dev/null, so
 * only rank 0 prints progress; errors (stderr) name their rank. Every rank hashes
 * its own executable and the job is refused when they differ. False after printing
 * the error (then call dist_end). */
bool dist_start(void);
/* End with exit code rc. When every rank ends together, MPI is finalised and rc
 * returned; a rank that fails alone (others still wait in an exchange) stops the
 * whole job with MPI_Abort rather than leaving it hanging. */
int dist_end(int rc);
int dist_rank(void);
int dist_size(void);

/* True when ok is true on every rank. Otherwise rank 0 names the ranks that failed
 * (each printed its own message) and every rank gets false. */
bool dist_all_ok(bool ok);
/* True on every rank when flag is true on any (e.g. an interrupt). */
bool dist_any(bool flag);
/* True when the SHA-256 of data[0..len) is the same on every rank; otherwise rank 0
 * says which ranks' `what` differs from its own and every rank gets false. */
bool dist_same(const char *what, const void *data, size_t len);

/* Allocate the exchange buffers for model m (built, not yet compiled) and set the
 * BatchNorm reduce hook in ca, its compile arguments (left NULL with one rank).
 * False after printing the error. */
bool dist_prepare(const cl_model *m, cl_compile_args *ca);
void dist_release(void);
/* The reduce hook: sums[0..n) summed over the ranks, in rank order. */
void dist_sum_doubles(double *sums, size_t n, void *ctx);
/* The parameter gradients g[0..n) summed over the ranks in rank order (a
 * reduce-scatter by MPI_Alltoallv, each rank adding its chunk in rank order exactly
 * as the threads add theirs, then MPI_Allgatherv): the result does not depend on
 * timing, and it is what one process with the ranks' threads would compute. */
void dist_sum_grads(cl_real *g, size_t n);
/* Total seconds spent in dist_sum_grads exchanging gradients, how many calls, and
 * the seconds before that spent waiting for the slowest rank to arrive. */
double dist_reduce_seconds(long *calls, double *wait_seconds);
/* A batch of `total` rows of `width` values split over the ranks as the loader
 * splits it (rank r holds rows [total*r/size, total*(r+1)/size)): gather every
 * rank's rows into all[total][width]. */
void dist_gather_rows(const cl_real *mine, int total, int width, cl_real *all);
void dist_gather_labels(const int32_t *mine, int total, int32_t *all);

#endif
