/* dropout.c: inverted dropout (torch.nn.Dropout): in training each element is zeroed
 * with probability p and the rest scaled by 1/(1-p); in evaluation it is the identity.
 *
 * The mask is never stored: bit i of the mask is a keyed hash of the element's index
 * in the whole batch, keyed by the seed, the training step and the layer, so the
 * backward recomputes it, and it does not depend on how threads split the batch, nor
 * on how processes split a global batch (the index counts from the global batch's
 * start: cl_model_set_shard). */
#include "nn/model.h"

static uint32_t mask_key(const cl_exec *e, const cl_node *n) {
    uint64_t seed = e->m->args.seed;
    uint32_t k = cl_hash32((uint32_t)seed, (uint32_t)(seed >> 32));
    k = cl_hash32(k, (uint32_t)e->m->dropout_step);
    return cl_hash32(k, (uint32_t)(n - e->m->nodes));
}

/* out[i] = keep(first + i) ? inp[i] * scale : 0, keep(j) = hash(key, j) >= threshold */
CL_CLONES static void dropout_forward(cl_real *restrict out, const cl_real *restrict inp,
                                      size_t count, uint32_t key, uint32_t first,
                                      uint32_t threshold, cl_real scale) {
    for (size_t i = 0; i < count; i++) {
        cl_real x = inp[i] * scale;
        out[i] = cl_hash32(key, first + (uint32_t)i) >= threshold ? x : 0;
    }
}

/* dinp[i] += keep(first + i) ? dout[i] * scale : 0 */
CL_CLONES static void dropout_backward(cl_real *restrict dinp, const cl_real *restrict dout,
                                       size_t count, uint32_t key, uint32_t first,
                                       uint32_t threshold, cl_real scale) {
    for (size_t i = 0; i < count; i++) {
        cl_real d = dout[i] * scale;
        dinp[i] += cl_hash32(key, first + (uint32_t)i) >= threshold ? d : 0;
    }
}

static uint32_t threshold_of(cl_real p) { return (uint32_t)((double)p * 4294967296.0); }

static void forward(const cl_exec *e, const cl_node *n) {
    size_t size = e->m->tensors[n->out].size, count = (size_t)(e->n1 - e->n0) * size;
    const cl_real *inp = cl_act(e, n->in[0]);
    cl_real *out = cl_act(e, n->out);
    if (!e->train || n->a.p == 0) {
        for (size_t i = 0; i < count; i++) out[i] = inp[i];
        return;
    }
    dropout_forward(out, inp, count, mask_key(e, n), (uint32_t)((size_t)(e->first + e->n0) * size),
                    threshold_of(n->a.p), 1.0f / (1.0f - n->a.p));
}

static void backward(const cl_exec *e, const cl_node *n) {
    cl_real *dinp = cl_dinp(e, n->in[0]);
    if (!dinp) return;
    size_t size = e->m->tensors[n->out].size, count = (size_t)(e->n1 - e->n0) * size;
    const cl_real *dout = cl_dact(e, n->out);
    if (!e->train || n->a.p == 0) {
        for (size_t i = 0; i < count; i++) dinp[i] += dout[i];
        return;
    }
    dropout_backward(dinp, dout, count, mask_key(e, n), (uint32_t)((size_t)(e->first + e->n0) * size),
                     threshold_of(n->a.p), 1.0f / (1.0f - n->a.p));
}

const cl_op cl_op_dropout = {
    .name = "dropout",
    .torch_name = "Dropout",
    .rf = CL_RF_SAME,
    .infer_shape = cl_infer_same_shape,
    .forward = forward,
    .backward = backward,
};
