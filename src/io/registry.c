/* registry.c: the table of layer kinds and keys (see registry.h). One entry per
 * model-file keyword; the parser, the error messages and the docs tables read it. */
#include "io/registry.h"

#include <string.h>

#define MAX_DIM 65536
#define CONV_KEYS "k, stride, pad, dilation, groups, bias, init"
#define NORM_KEYS "num_groups, eps, momentum"
#define ACT_KEYS "act, slope"

const cl_layer_key cl_layer_keys[] = {
    {"k", CL_KEY_PAIR, 1, MAX_DIM, "3 (pools: required)", "kernel size"},
    {"stride", CL_KEY_PAIR, 1, MAX_DIM, "1 (pools: the kernel)", "step of the window"},
    {"pad", CL_KEY_PAD, 0, MAX_DIM, "0", "zero padding on each side; `same` pads by `dilation*(k-1)/2` (odd kernels)"},
    {"dilation", CL_KEY_PAIR, 1, MAX_DIM, "1", "spacing of the kernel's taps"},
    {"groups", CL_KEY_INT, 1, MAX_DIM, "1", "grouped convolution: channels split into this many groups"},
    {"bias", CL_KEY_BOOL, 0, 1, "1 (`block`: 0 when a norm follows)", "add a bias"},
    {"init", CL_KEY_INIT, 0, 0, "default (`defaults init=`, blocks only)",
     "the convolution weights' start: `default` (PyTorch's) or `dirac` (identity: default init, then `nn.init.dirac_(w[:in])` per group)"},
    {"norm", CL_KEY_NORM, 0, 0, "none", "normalisation after a `block`'s convolution"},
    {"num_groups", CL_KEY_INT, 1, MAX_DIM, "2", "GroupNorm's groups (must divide the channels)"},
    {"eps", CL_KEY_FLOAT, 1e-12, 0.5, "1e-5", "normalisation epsilon"},
    {"momentum", CL_KEY_FLOAT, 1e-6, 1, "0.1", "BatchNorm's running-statistics momentum"},
    {"elementwise", CL_KEY_BOOL, 0, 1, "0", "LayerNorm with one affine weight per element (`nn.LayerNorm([C,H,W])`)"},
    {"act", CL_KEY_ACT, 0, 0, "relu", "activation after a `block`'s normalisation"},
    {"slope", CL_KEY_FLOAT, -1e6, 1e6, "0.01", "LeakyReLU's negative slope"},
    {"dropout", CL_KEY_FLOAT, 0, 0.999, "0 (no dropout layer)", "dropout probability after a `block`"},
    {"p", CL_KEY_FLOAT, 0, 0.999, "`defaults dropout=`, else 0.5", "dropout probability"},
    {"as", CL_KEY_NAME, 0, 0, "", "names this line's output"},
    {"from", CL_KEY_NAME, 0, 0, "the previous line's output", "this line's input"},
};
const int cl_layer_key_count = (int)(sizeof cl_layer_keys / sizeof *cl_layer_keys);

/* The activation ops (src/nn/ops/activation.c); cl_activation() finds them by kind. */
extern const cl_op cl_op_relu, cl_op_leaky_relu, cl_op_gelu, cl_op_silu, cl_op_hardswish;

const cl_layer_kind cl_layer_kinds[] = {
    {.keyword = "input", .positional = "the sample shape CxHxW, e.g. `input 3x32x32`",
     .min_pos = 1, .max_pos = 1, .pos_lo = 1, .pos_hi = MAX_DIM, .keys = "",
     .torch = "the input sample shape", .build = cl_build_input},
    {.keyword = "defaults", .positional = "",
     .keys = "norm, " NORM_KEYS ", " ACT_KEYS ", dropout, init",
     .torch = "(sets the defaults of the keys for the following lines)",
     .build = cl_build_defaults},
    {.keyword = "conv", .positional = "the number of output channels", .min_pos = 1, .max_pos = 1,
     .pos_lo = 1, .pos_hi = MAX_DIM, .pos_field = "out", .keys = CONV_KEYS,
     .torch = "", .op = &cl_op_conv2d, .build = cl_build_conv},
    {.keyword = "block", .positional = "the number of output channels", .min_pos = 1, .max_pos = 1,
     .pos_lo = 1, .pos_hi = MAX_DIM, .pos_field = "out",
     .keys = CONV_KEYS ", norm, " NORM_KEYS ", " ACT_KEYS ", dropout",
     .torch = "`Conv2d` -> norm -> activation -> `Dropout`", .build = cl_build_block},
    {.keyword = "sepblock", .positional = "the number of output channels", .min_pos = 1,
     .max_pos = 1, .pos_lo = 1, .pos_hi = MAX_DIM, .pos_field = "out",
     .keys = "k, stride, pad, dilation, bias, init, norm, " NORM_KEYS ", " ACT_KEYS ", dropout",
     .torch = "depthwise `Conv2d(C_in, C_in, k, groups=C_in)` -> norm -> activation -> "
              "`Conv2d(C_in, C, 1)` -> norm -> activation -> `Dropout` (MobileNet v1)",
     .build = cl_build_sepblock},
    {.keyword = "maxpool", .positional = "the kernel size", .max_pos = 1, .pos_lo = 1,
     .pos_hi = MAX_DIM, .pos_field = "k", .keys = "k, stride, pad",
     .torch = "(stride defaults to the kernel)", .op = &cl_op_maxpool2d,
     .build = cl_build_maxpool},
    {.keyword = "avgpool", .positional = "the kernel size", .max_pos = 1, .pos_lo = 1,
     .pos_hi = MAX_DIM, .pos_field = "k", .keys = "k, stride, pad",
     .torch = "(`count_include_pad=True`)", .op = &cl_op_avgpool2d,
     .build = cl_build_avgpool},
    {.keyword = "gap", .positional = "", .keys = "", .torch = "(to 1x1)",
     .op = &cl_op_global_avgpool, .build = cl_build_gap},
    {.keyword = "bn", .positional = "", .keys = "eps, momentum", .torch = "",
     .op = &cl_op_batchnorm2d, .norm = CL_NORM_BATCH, .build = cl_build_norm},
    {.keyword = "gn", .positional = "the number of groups", .max_pos = 1, .pos_lo = 1,
     .pos_hi = MAX_DIM, .pos_field = "num_groups", .keys = "num_groups, eps",
     .torch = "", .op = &cl_op_groupnorm, .norm = CL_NORM_GROUP,
     .build = cl_build_norm},
    {.keyword = "ln", .positional = "", .keys = "eps, elementwise",
     .torch = "`nn.GroupNorm(1, C)`; with `elementwise=1`, `nn.LayerNorm([C,H,W])`",
     .op = &cl_op_layernorm, .norm = CL_NORM_LAYER, .build = cl_build_norm},
    {.keyword = "norm", .positional = "", .keys = NORM_KEYS ", elementwise",
     .torch = "the default normalisation (`defaults norm=...`)", .build = cl_build_norm},
    {.keyword = "relu", .positional = "", .keys = "", .torch = "", .op = &cl_op_relu,
     .act = CL_ACT_RELU, .build = cl_build_activation},
    {.keyword = "leakyrelu", .positional = "", .keys = "slope",
     .torch = "(slope 0.01 by default)", .op = &cl_op_leaky_relu,
     .act = CL_ACT_LEAKY_RELU, .build = cl_build_activation},
    {.keyword = "gelu", .positional = "", .keys = "", .torch = "(exact, erf form)",
     .op = &cl_op_gelu, .act = CL_ACT_GELU, .build = cl_build_activation},
    {.keyword = "silu", .positional = "", .keys = "", .torch = "(x * sigmoid(x))", .op = &cl_op_silu,
     .act = CL_ACT_SILU, .build = cl_build_activation},
    {.keyword = "hardswish", .positional = "", .keys = "", .torch = "(x * relu6(x + 3) / 6)",
     .op = &cl_op_hardswish, .act = CL_ACT_HARDSWISH, .build = cl_build_activation},
    {.keyword = "act", .positional = "", .keys = "slope",
     .torch = "the default activation (`defaults act=...`)", .build = cl_build_activation},
    {.keyword = "dropout", .positional = "the probability", .max_pos = 1, .pos_lo = 0,
     .pos_hi = 0.999, .pos_field = "p", .keys = "p",
     .torch = "(probability defaults to `defaults dropout=`, else 0.5)",
     .op = &cl_op_dropout, .build = cl_build_dropout},
    {.keyword = "add", .positional = "one or two tensor names", .min_pos = 1, .max_pos = 2,
     .keys = "", .torch = "`a + b`; with one name, previous output + NAME", .op = &cl_op_add,
     .build = cl_build_add},
    {.keyword = "concat", .positional = "two or more tensor names", .min_pos = 2,
     .max_pos = CL_MAX_INPUTS, .keys = "", .torch = "`torch.cat([...], dim=1)`",
     .op = &cl_op_concat, .build = cl_build_concat},
    {.keyword = "flatten", .positional = "", .keys = "", .torch = "",
     .op = &cl_op_flatten, .build = cl_build_flatten},
    {.keyword = "linear", .positional = "the number of output features", .min_pos = 1,
     .max_pos = 1, .pos_lo = 1, .pos_hi = 1 << 20, .pos_field = "out", .keys = "bias",
     .torch = "(input must be `Cx1x1`: after `gap` or `flatten`)",
     .op = &cl_op_linear, .build = cl_build_linear},
};
const int cl_layer_kind_count = (int)(sizeof cl_layer_kinds / sizeof *cl_layer_kinds);

const cl_layer_kind *cl_layer_kind_find(const char *keyword) {
    for (int i = 0; i < cl_layer_kind_count; i++)
        if (!strcmp(cl_layer_kinds[i].keyword, keyword)) return &cl_layer_kinds[i];
    return NULL;
}

const cl_layer_key *cl_layer_key_find(const char *name) {
    for (int i = 0; i < cl_layer_key_count; i++)
        if (!strcmp(cl_layer_keys[i].name, name)) return &cl_layer_keys[i];
    return NULL;
}

static void append(char *buf, size_t len, const char *s) {
    size_t n = strlen(buf);
    if (n < len) snprintf(buf + n, len - n, "%s", s);
}

void cl_layer_list(cl_list_kind which, const char *sep, const char *last_sep, char *buf,
                   size_t len) {
    if (len) buf[0] = 0;
    const char *names[64];
    int n = 0;
    for (int i = 0; i < cl_layer_kind_count && n < 64; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        if (which == CL_LIST_ALL || (which == CL_LIST_ACTS && k->act != CL_ACT_NONE) ||
            (which == CL_LIST_NORMS && k->norm != CL_NORM_NONE))
            names[n++] = k->keyword;
    }
    for (int i = 0; i < n; i++) {
        if (i) append(buf, len, i == n - 1 ? last_sep : sep);
        append(buf, len, names[i]);
    }
}

/* "k, stride" -> "`k stride`" */
static void key_list_md(const char *keys, char *buf, size_t len) {
    buf[0] = 0;
    if (!keys[0]) return;
    append(buf, len, "`");
    for (const char *s = keys; *s; s++) {
        if (*s == ',') continue;
        char c[2] = {*s, 0};
        append(buf, len, c);
    }
    append(buf, len, "`");
}

static const char *value_md(const cl_layer_key *k, char *buf, size_t len) {
    char list[256];
    switch (k->type) {
    case CL_KEY_INT: return "whole number";
    case CL_KEY_PAIR: return "`N` or `HxW`";
    case CL_KEY_PAD: return "`N`, `HxW` or `same`";
    case CL_KEY_FLOAT: return "number";
    case CL_KEY_BOOL: return "`0`, `1`, `false`, `true`";
    case CL_KEY_NAME: return "a name";
    case CL_KEY_INIT: return "`default` or `dirac`";
    case CL_KEY_NORM: cl_layer_list(CL_LIST_NORMS, "`, `", "`, `", list, sizeof list); break;
    case CL_KEY_ACT: cl_layer_list(CL_LIST_ACTS, "`, `", "`, `", list, sizeof list); break;
    }
    buf[0] = 0;
    append(buf, len, "`");
    append(buf, len, list);
    append(buf, len, "` or `none`");
    return buf;
}

static const char *range_md(const cl_layer_key *k, char *buf, size_t len) {
    buf[0] = 0;
    if (k->type == CL_KEY_INT || k->type == CL_KEY_PAIR || k->type == CL_KEY_PAD ||
        k->type == CL_KEY_FLOAT)
        snprintf(buf, len, "%.10g to %.10g", k->lo, k->hi);
    return buf;
}

void cl_registry_write_docs(FILE *f) {
    fprintf(f, "| keyword | positional | keys | PyTorch equivalent |\n|---|---|---|---|\n");
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        char keys[256], pos[160] = "";
        key_list_md(k->keys, keys, sizeof keys);
        if (k->positional[0] && k->pos_hi > 0 && strcmp(k->keyword, "input"))
            snprintf(pos, sizeof pos, "%s (%.10g to %.10g)", k->positional, k->pos_lo, k->pos_hi);
        else
            snprintf(pos, sizeof pos, "%s", k->positional);
        char torch[256];
        if (k->op && (!k->torch[0] || k->torch[0] == '('))
            snprintf(torch, sizeof torch, "`nn.%s`%s%s", k->op->torch_name, k->torch[0] ? " " : "",
                     k->torch);
        else
            snprintf(torch, sizeof torch, "%s", k->torch);
        fprintf(f, "| `%s` | %s | %s | %s |\n", k->keyword, pos, keys, torch);
    }
    fprintf(f, "\n| key | value | range | default | meaning |\n|---|---|---|---|---|\n");
    for (int i = 0; i < cl_layer_key_count; i++) {
        const cl_layer_key *k = &cl_layer_keys[i];
        char value[256], range[64];
        fprintf(f, "| `%s` | %s | %s | %s | %s |\n", k->name, value_md(k, value, sizeof value),
                range_md(k, range, sizeof range), k->fallback, k->meaning);
    }
}
