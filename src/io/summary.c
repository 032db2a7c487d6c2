/* summary.c: the model summary table, in the style of torchsummary and Keras: one row
 * per layer with its output shape, trainable parameters, receptive field and jump,
 * and multiply-accumulates, then the totals and the memory an image needs. */
#include <string.h>

#include "nn/model.h"

/* 1234567 -> "1,234,567" */
static const char *thousands(char *buf, size_t len, int64_t v) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(raw), o = 0;
    if (v < 0 && o + 1 < len) buf[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        buf[o++] = raw[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

static const char *pair(char *buf, size_t len, int64_t h, int64_t w) {
    if (h == w)
        snprintf(buf, len, "%lld", (long long)h);
    else
        snprintf(buf, len, "%lldx%lld", (long long)h, (long long)w);
    return buf;
}

static const char *shape_str(char *buf, size_t len, cl_shape s) {
    snprintf(buf, len, "[%d, %d, %d]", s.c, s.h, s.w);
    return buf;
}

static void rule(FILE *f, char c, int width) {
    for (int i = 0; i < width; i++) fputc(c, f);
    fputc('\n', f);
}

void cl_model_print_summary(const cl_model *m, const char *title, FILE *f) {
    enum { WIDTH = 98 };
    char b1[48], b2[48], b3[48], b4[48], b5[48];
    const cl_tensor *in = &m->tensors[0];
    if (title) fprintf(f, "Model: %s\n", title);
    rule(f, '-', WIDTH);
    fprintf(f, "%4s  %-19s %-10s %-16s %10s %7s %5s %13s %5s\n", "#", "Layer (type)", "Name",
            "Output Shape", "Param #", "RF", "Jump", "MACs", "Line");
    rule(f, '=', WIDTH);
    fprintf(f, "%4s  %-19s %-10s %-16s %10s %7s %5s %13s %5s\n", "", "Input", "input",
            shape_str(b1, sizeof b1, in->shape), "0", "1", "1", "0", "");
    int64_t macs = 0, acts = 0;
    for (int i = 0; i < m->nnodes; i++) {
        const cl_node *n = &m->nodes[i];
        const cl_tensor *t = &m->tensors[n->out];
        char name[CL_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s", t->name);
        if (n->nin > 1 || (n->in[0] != (i == 0 ? 0 : m->nodes[i - 1].out))) {
            /* show where a layer's inputs come from when it is not simply the previous one */
            size_t len = strlen(name);
            snprintf(name + len, sizeof name - len, "%s<-", len ? " " : "");
            for (int k = 0; k < n->nin && strlen(name) < sizeof name - 2; k++) {
                const cl_tensor *src = &m->tensors[n->in[k]];
                len = strlen(name);
                if (src->name[0])
                    snprintf(name + len, sizeof name - len, "%s%s", k ? "," : "", src->name);
                else
                    snprintf(name + len, sizeof name - len, "%s#%d", k ? "," : "", src->producer);
            }
        }
        char line[16] = "";
        if (n->line) snprintf(line, sizeof line, "%d", n->line);
        fprintf(f, "%4d  %-19s %-10s %-16s %10s %7s %5s %13s %5s\n", i, n->op->torch_name, name,
                shape_str(b1, sizeof b1, t->shape), thousands(b2, sizeof b2, (int64_t)n->nparams),
                pair(b3, sizeof b3, t->rf_h, t->rf_w), pair(b4, sizeof b4, t->jump_h, t->jump_w),
                thousands(b5, sizeof b5, n->macs), line);
        macs += n->macs;
        acts += (int64_t)t->size;
    }
    rule(f, '=', WIDTH);
    int64_t trainable = cl_model_param_count(m), buffers = cl_model_buffer_count(m);
    const cl_tensor *out = &m->tensors[cl_model_output(m)];
    fprintf(f, "Total params: %s\n", thousands(b1, sizeof b1, trainable + buffers));
    fprintf(f, "Trainable params: %s\n", thousands(b1, sizeof b1, trainable));
    fprintf(f, "Non-trainable params: %s (BatchNorm running statistics)\n",
            thousands(b1, sizeof b1, buffers));
    fprintf(f, "Output: %s, receptive field %s, jump %s\n", shape_str(b1, sizeof b1, out->shape),
            pair(b2, sizeof b2, out->rf_h, out->rf_w), pair(b3, sizeof b3, out->jump_h, out->jump_w));
    fprintf(f, "MACs per image: %s (%.2f M)\n", thousands(b1, sizeof b1, macs), macs / 1e6);
    rule(f, '-', WIDTH);
    const double mb = 1024.0 * 1024.0;
    fprintf(f, "Input size per image (MB): %.3f\n", in->size * (double)sizeof(cl_real) / mb);
    fprintf(f, "Activations per image (MB): %.3f forward, %.3f forward+backward\n", acts * (double)sizeof(cl_real) / mb,
            acts * 2.0 * (double)sizeof(cl_real) / mb);
    fprintf(f, "Params size (MB): %.3f\n", (trainable + buffers) * (double)sizeof(cl_real) / mb);
    rule(f, '-', WIDTH);
}
