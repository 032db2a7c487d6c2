/* parse.c: the model-file parser (docs/model-format.md). It reads one layer per line,
 * finds its keyword in the layer registry (registry.c), and the entry's builder below
 * checks the line's keys and values against the registry and calls the public
 * builder API, exactly as a C user would. Every error names
 * file:line:col and says what was expected; hostile input (binary data, huge numbers,
 * very long lines, thousands of layers) is refused with a message, never a crash. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/registry.h"

#define MAX_LINE 4096
#define MAX_ARGS 32
#define MAX_FILE_BYTES (16u << 20)

typedef struct {
    const char *key, *val; /* val is NULL for a positional argument */
    int col, vcol;
} arg;

typedef struct {
    cl_norm_kind norm;
    int num_groups;
    float eps, momentum;
    cl_act_kind act;
    float slope;
    float dropout;
    cl_conv_init init; /* of block and sepblock convolutions */
} defaults;

struct cl_parser {
    const char *path;
    char *err;
    size_t errlen;
    const cl_shape *input_override;
    cl_model *m;
    int prev; /* the previous line's output tensor */
    defaults def;
    int line;
    /* the current line */
    const char *kw;
    const cl_layer_kind *kind; /* the registry entry of kw */
    int kwcol;
    arg args[MAX_ARGS];
    int nargs;
    bool failed;
};
typedef struct cl_parser parser;

__attribute__((format(printf, 3, 4))) static void fail_at(parser *p, int col, const char *fmt,
                                                           ...) {
    if (p->failed) return;
    p->failed = true;
    int k = snprintf(p->err, p->errlen, "%s:%d:%d: ", p->path, p->line, col);
    if (k < 0 || (size_t)k >= p->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static const arg *find_key(const parser *p, const char *key) {
    for (int i = 0; i < p->nargs; i++)
        if (p->args[i].val && strcmp(p->args[i].key, key) == 0) return &p->args[i];
    return NULL;
}

static const arg *positional(const parser *p, int k) {
    for (int i = 0; i < p->nargs; i++)
        if (!p->args[i].val && k-- == 0) return &p->args[i];
    return NULL;
}

static int npositional(const parser *p) {
    int n = 0;
    for (int i = 0; i < p->nargs; i++) n += !p->args[i].val;
    return n;
}

/* Report a builder error at the column of the option it is about: its key=value, or
 * the positional argument that stands for it, or else the keyword. */
static void fail_builder(parser *p) {
    const char *field = cl_model_error_field(p->m);
    const arg *a = field[0] ? find_key(p, field) : NULL;
    if (!a && field[0] && !strcmp(field, p->kind->pos_field ? p->kind->pos_field : "")) a = positional(p, 0);
    fail_at(p, a ? a->col : p->kwcol, "%s", cl_model_error(p->m));
}

/* ---- values ----------------------------------------------------------------- */

static bool parse_long(const char *s, long lo, long hi, long *out) {
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1]))) return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || errno == ERANGE || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool int_value(parser *p, const char *s, int col, const char *what, long lo, long hi,
                      int *out) {
    long v;
    if (!parse_long(s, lo, hi, &v)) {
        fail_at(p, col, "%s: expected a whole number from %ld to %ld, got '%s'", what, lo, hi, s);
        return false;
    }
    *out = (int)v;
    return true;
}

/* "3" or "3x1" -> h, w */
static bool pair_value(parser *p, const arg *a, const char *what, long lo, long hi, int *h,
                       int *w) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", a->val);
    char *x = strchr(buf, 'x');
    long vh, vw;
    bool ok;
    if (x) {
        *x = 0;
        ok = parse_long(buf, lo, hi, &vh) && parse_long(x + 1, lo, hi, &vw);
    } else {
        ok = parse_long(buf, lo, hi, &vh);
        vw = vh;
    }
    if (!ok || strlen(a->val) >= sizeof buf) {
        fail_at(p, a->vcol, "%s: expected a whole number from %ld to %ld or HxW, got '%s'", what,
                lo, hi, a->val);
        return false;
    }
    *h = (int)vh;
    *w = (int)vw;
    return true;
}

static bool float_value(parser *p, const char *s, int col, const char *what, double lo, double hi,
                        float *out) {
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        fail_at(p, col, "%s: expected a number from %g to %g, got '%s'", what, lo, hi, s);
        return false;
    }
    *out = (float)v;
    return true;
}

static bool bool_value(parser *p, const arg *a, bool *out) {
    if (!strcmp(a->val, "1") || !strcmp(a->val, "true")) *out = true;
    else if (!strcmp(a->val, "0") || !strcmp(a->val, "false")) *out = false;
    else {
        fail_at(p, a->vcol, "%s: expected 0, 1, true or false, got '%s'", a->key, a->val);
        return false;
    }
    return true;
}

static bool valid_name(const char *s) {
    if (!isalpha((unsigned char)s[0])) return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '_') return false;
    return n < CL_NAME_MAX;
}

/* A tensor referred to by name. */
static int name_ref(parser *p, const char *name, int col) {
    if (!valid_name(name)) {
        fail_at(p, col, "expected a tensor name (a letter, then letters, digits or _), got '%s'",
                name);
        return -1;
    }
    int t = cl_model_find(p->m, name);
    if (t < 0) fail_at(p, col, "unknown name '%s': no earlier line has as=%s", name, name);
    return t;
}

/* norm=KIND: a normalisation keyword of the registry, or none. */
static bool norm_kind(parser *p, const arg *a, cl_norm_kind *out) {
    const cl_layer_kind *k = cl_layer_kind_find(a->val);
    if (!strcmp(a->val, "none") || (k && k->norm != CL_NORM_NONE)) {
        *out = k ? k->norm : CL_NORM_NONE;
        return true;
    }
    char list[256];
    cl_layer_list(CL_LIST_NORMS, ", ", ", ", list, sizeof list);
    fail_at(p, a->vcol, "norm: expected %s or none, got '%.40s'", list, a->val);
    return false;
}

/* act=KIND: an activation keyword of the registry, or none. */
static bool act_kind(parser *p, const arg *a, cl_act_kind *out) {
    const cl_layer_kind *k = cl_layer_kind_find(a->val);
    if (!strcmp(a->val, "none") || (k && k->act != CL_ACT_NONE)) {
        *out = k ? k->act : CL_ACT_NONE;
        return true;
    }
    char list[256];
    cl_layer_list(CL_LIST_ACTS, ", ", ", ", list, sizeof list);
    fail_at(p, a->vcol, "act: expected %s or none, got '%.40s'", list, a->val);
    return false;
}

/* init=KIND: default or dirac. */
static bool init_kind(parser *p, const arg *a, cl_conv_init *out) {
    if (!strcmp(a->val, "default")) *out = CL_INIT_DEFAULT;
    else if (!strcmp(a->val, "dirac")) *out = CL_INIT_DIRAC;
    else {
        fail_at(p, a->vcol, "init: expected default or dirac, got '%.40s'", a->val);
        return false;
    }
    return true;
}

/* ---- keys, with the types and ranges of the registry ------------------------ */

/* Each reads key=value of the current line into *out when the key is given, checked
 * against the key's range in the registry; leaves *out alone when it is absent, and
 * returns false after reporting a bad value. */
static bool key_int(parser *p, const char *name, int *out) {
    const arg *a = find_key(p, name);
    const cl_layer_key *k = cl_layer_key_find(name);
    return !a || int_value(p, a->val, a->vcol, name, (long)k->lo, (long)k->hi, out);
}

static bool key_pair(parser *p, const char *name, int *h, int *w) {
    const arg *a = find_key(p, name);
    const cl_layer_key *k = cl_layer_key_find(name);
    return !a || pair_value(p, a, name, (long)k->lo, (long)k->hi, h, w);
}

static bool key_float(parser *p, const char *name, float *out) {
    const arg *a = find_key(p, name);
    const cl_layer_key *k = cl_layer_key_find(name);
    return !a || float_value(p, a->val, a->vcol, name, k->lo, k->hi, out);
}

static bool key_bool(parser *p, const char *name, bool *out) {
    const arg *a = find_key(p, name);
    return !a || bool_value(p, a, out);
}

/* ---- argument checking ------------------------------------------------------ */

/* Is key in the ", "-separated list keys, or as/from (which every line takes)? */
static bool key_allowed(const char *keys, const char *key) {
    if (!strcmp(key, "as") || !strcmp(key, "from")) return true;
    size_t n = strlen(key);
    for (const char *k = keys; *k;) {
        const char *end = strchr(k, ',');
        size_t len = end ? (size_t)(end - k) : strlen(k);
        if (len == n && !strncmp(k, key, n)) return true;
        if (!end) break;
        k = end + 1;
        while (*k == ' ') k++;
    }
    return false;
}

/* Every key must be one of the line's kind (registry), each given once, and the
 * number of positional arguments within the kind's. */
static bool check_args(parser *p) {
    const cl_layer_kind *kind = p->kind;
    const char *keys = kind->keys;
    for (int i = 0; i < p->nargs; i++) {
        const arg *a = &p->args[i];
        if (!a->val) continue;
        if (!key_allowed(keys, a->key)) {
            fail_at(p, a->col, "unknown option '%.40s' for %s; expected one of: %s%sas, from", a->key,
                    p->kw, keys, keys[0] ? ", " : "");
            return false;
        }
        for (int j = 0; j < i; j++)
            if (p->args[j].val && !strcmp(p->args[j].key, a->key)) {
                fail_at(p, a->col, "option '%s' is given twice", a->key);
                return false;
            }
    }
    int np = npositional(p);
    if (np > kind->max_pos) {
        const arg *extra = positional(p, kind->max_pos);
        if (kind->max_pos == 0)
            fail_at(p, extra->col, "%s takes no positional argument, got '%.40s' (options are key=value)",
                    p->kw, extra->key);
        else
            fail_at(p, extra->col, "too many arguments for %s: expected %s", p->kw, kind->positional);
        return false;
    }
    if (np < kind->min_pos) {
        fail_at(p, p->kwcol + (int)strlen(p->kw), "%s needs %s", p->kw, kind->positional);
        return false;
    }
    return true;
}

/* The input of this line: from=NAME or the previous line's output. */
static int line_input(parser *p) {
    const arg *a = find_key(p, "from");
    return a ? name_ref(p, a->val, a->vcol) : p->prev;
}

/* Name the line's output (as=NAME) and make it the next line's input. */
static bool finish_line(parser *p, int out) {
    if (out < 0) {
        if (!p->failed) fail_builder(p);
        return false;
    }
    const arg *a = find_key(p, "as");
    if (a) {
        if (!valid_name(a->val) || !strcmp(a->val, "input")) {
            fail_at(p, a->vcol,
                    "as: expected a name (a letter, then letters, digits or _, at most %d; not "
                    "'input'), got '%.60s'", CL_NAME_MAX - 1, a->val);
            return false;
        }
        if (cl_model_find(p->m, a->val) >= 0) {
            fail_at(p, a->vcol, "the name '%s' is already used by an earlier line", a->val);
            return false;
        }
        if (cl_model_set_name(p->m, out, a->val) != CL_OK) {
            fail_builder(p);
            return false;
        }
    }
    p->prev = out;
    return true;
}

/* ---- builders: one per family of keywords (the registry names them) ---------- */

/* Geometry keys shared by conv, block and the pools; pools must give a kernel. */
static bool geometry(parser *p, cl_conv2d_args *a, bool is_pool) {
    const arg *k = find_key(p, "k");
    const arg *kpos = is_pool ? positional(p, 0) : NULL;
    if (k && kpos) {
        fail_at(p, k->col, "the kernel is given twice (positional and k=)");
        return false;
    }
    if (kpos) {
        arg tmp = *kpos;
        tmp.val = kpos->key;
        tmp.vcol = kpos->col;
        if (!pair_value(p, &tmp, "kernel", (long)p->kind->pos_lo, (long)p->kind->pos_hi,
                        &a->kernel_h, &a->kernel_w))
            return false;
    } else if (k) {
        if (!key_pair(p, "k", &a->kernel_h, &a->kernel_w)) return false;
    } else if (is_pool) {
        fail_at(p, p->kwcol + (int)strlen(p->kw), "%s needs a kernel size, e.g. `%s 2`", p->kw, p->kw);
        return false;
    } else {
        a->kernel_h = a->kernel_w = 3;
    }
    if (!key_pair(p, "stride", &a->stride_h, &a->stride_w)) return false;
    if (!is_pool && !key_pair(p, "dilation", &a->dilation_h, &a->dilation_w)) return false;
    int dh = a->dilation_h ? a->dilation_h : 1, dw = a->dilation_w ? a->dilation_w : 1;
    const arg *pd = find_key(p, "pad");
    if (pd && !strcmp(pd->val, "same")) {
        if (a->kernel_h % 2 == 0 || a->kernel_w % 2 == 0) {
            fail_at(p, pd->vcol, "pad=same needs an odd kernel, got %dx%d", a->kernel_h, a->kernel_w);
            return false;
        }
        a->pad_h = dh * (a->kernel_h - 1) / 2;
        a->pad_w = dw * (a->kernel_w - 1) / 2;
    } else if (!key_pair(p, "pad", &a->pad_h, &a->pad_w)) {
        return false;
    }
    return true;
}

/* The normalisation keys over the defaults. */
static bool norm_args(parser *p, cl_norm_kind kind, cl_norm_args *n) {
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->groups = p->def.num_groups;
    n->eps = p->def.eps;
    n->momentum = p->def.momentum;
    return key_int(p, "num_groups", &n->groups) && key_float(p, "eps", &n->eps) &&
           key_float(p, "momentum", &n->momentum) && key_bool(p, "elementwise", &n->elementwise);
}

typedef enum { LINE_CONV, LINE_BLOCK, LINE_SEPBLOCK } conv_line_kind;

/* conv; block: conv -> norm -> activation -> dropout with the defaults; sepblock:
 * depthwise conv (groups = input channels, out = input channels) -> norm -> activation
 * -> 1x1 conv to the output channels -> norm -> activation -> dropout. */
static bool conv_line(parser *p, conv_line_kind kind) {
    if (!check_args(p)) return false;
    bool block = kind != LINE_CONV;
    const arg *o = positional(p, 0);
    cl_conv2d_args a = {0};
    if (!int_value(p, o->key, o->col, "output channels", (long)p->kind->pos_lo,
                   (long)p->kind->pos_hi, &a.out_channels))
        return false;
    if (!key_int(p, "groups", &a.groups)) return false;
    if (!geometry(p, &a, false)) return false;

    cl_norm_kind norm = block ? p->def.norm : CL_NORM_NONE;
    cl_act_kind act = block ? p->def.act : CL_ACT_NONE;
    float slope = p->def.slope, drop = block ? p->def.dropout : 0;
    a.init = block ? p->def.init : CL_INIT_DEFAULT;
    const arg *k;
    if ((k = find_key(p, "norm")) && !norm_kind(p, k, &norm)) return false;
    if ((k = find_key(p, "act")) && !act_kind(p, k, &act)) return false;
    if ((k = find_key(p, "init")) && !init_kind(p, k, &a.init)) return false;
    if (!key_float(p, "slope", &slope) || !key_float(p, "dropout", &drop)) return false;
    bool bias = norm == CL_NORM_NONE;
    if (!key_bool(p, "bias", &bias)) return false;
    a.no_bias = !bias;
    cl_norm_args na;
    if (!norm_args(p, norm, &na)) return false;

    int in = line_input(p);
    if (in < 0) return false;
    int x = in;
    if (kind == LINE_SEPBLOCK) {
        cl_conv2d_args dw = a;
        dw.out_channels = dw.groups = cl_model_shape(p->m, in).c;
        x = cl_conv2d(p->m, x, dw);
        if (x >= 0 && norm != CL_NORM_NONE) x = cl_norm(p->m, x, na);
        if (x >= 0 && act != CL_ACT_NONE) x = cl_activation(p->m, x, act, slope);
        a = (cl_conv2d_args){.out_channels = a.out_channels, .kernel_h = 1, .no_bias = a.no_bias,
                             .init = a.init};
        if (x < 0) return finish_line(p, x);
    }
    x = cl_conv2d(p->m, x, a);
    if (x >= 0 && norm != CL_NORM_NONE) x = cl_norm(p->m, x, na);
    if (x >= 0 && act != CL_ACT_NONE) x = cl_activation(p->m, x, act, slope);
    if (x >= 0 && drop > 0) x = cl_dropout(p->m, x, drop);
    return finish_line(p, x);
}

bool cl_build_conv(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return conv_line(p, LINE_CONV);
}

bool cl_build_block(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return conv_line(p, LINE_BLOCK);
}

bool cl_build_sepblock(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return conv_line(p, LINE_SEPBLOCK);
}

static bool pool_line(parser *p, int (*pool)(cl_model *, int, cl_conv2d_args)) {
    if (!check_args(p)) return false;
    cl_conv2d_args a = {0};
    if (!geometry(p, &a, true)) return false;
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, pool(p->m, in, a));
}

bool cl_build_maxpool(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return pool_line(p, cl_maxpool2d);
}

bool cl_build_avgpool(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return pool_line(p, cl_avgpool2d);
}

/* bn, gn, ln, and norm (the default kind). */
bool cl_build_norm(parser *p, const cl_layer_kind *kind) {
    cl_norm_kind norm = kind->norm;
    if (norm == CL_NORM_NONE) {
        norm = p->def.norm;
        if (norm == CL_NORM_NONE) {
            char bar[256], or[256];
            cl_layer_list(CL_LIST_NORMS, "|", "|", bar, sizeof bar);
            cl_layer_list(CL_LIST_NORMS, ", ", " or ", or, sizeof or);
            fail_at(p, p->kwcol, "`norm` uses the default normalisation, and none is set: add "
                                 "`defaults norm=%s` above, or write %s", bar, or);
            return false;
        }
    }
    if (!check_args(p)) return false;
    cl_norm_args na;
    if (!norm_args(p, norm, &na)) return false;
    const arg *g = positional(p, 0);
    if (g) {
        if (find_key(p, "num_groups")) {
            fail_at(p, g->col, "the number of groups is given twice (positional and num_groups=)");
            return false;
        }
        if (!int_value(p, g->key, g->col, "num_groups", (long)kind->pos_lo, (long)kind->pos_hi,
                       &na.groups))
            return false;
    }
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, cl_norm(p->m, in, na));
}

/* relu, leakyrelu, ... and act (the default kind). */
bool cl_build_activation(parser *p, const cl_layer_kind *kind) {
    cl_act_kind act = kind->act;
    if (act == CL_ACT_NONE) {
        act = p->def.act;
        if (act == CL_ACT_NONE) {
            char bar[256], or[256];
            cl_layer_list(CL_LIST_ACTS, "|", "|", bar, sizeof bar);
            cl_layer_list(CL_LIST_ACTS, ", ", " or ", or, sizeof or);
            fail_at(p, p->kwcol, "`act` uses the default activation, and it is none: set "
                                 "`defaults act=%s`, or write %s", bar, or);
            return false;
        }
    }
    if (!check_args(p)) return false;
    float slope = p->def.slope;
    if (!key_float(p, "slope", &slope)) return false;
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, cl_activation(p->m, in, act, slope));
}

bool cl_build_dropout(parser *p, const cl_layer_kind *kind) {
    if (!check_args(p)) return false;
    float prob = p->def.dropout > 0 ? p->def.dropout : 0.5f;
    const arg *a = positional(p, 0), *k = find_key(p, "p");
    if (a && k) {
        fail_at(p, k->col, "the probability is given twice (positional and p=)");
        return false;
    }
    if (a && !float_value(p, a->key, a->col, "dropout probability", kind->pos_lo, kind->pos_hi,
                          &prob))
        return false;
    if (!key_float(p, "p", &prob)) return false;
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, cl_dropout(p->m, in, prob));
}

/* add and concat take their inputs by name. */
static bool merge_line(parser *p, bool is_add) {
    if (!check_args(p)) return false;
    if (find_key(p, "from")) {
        fail_at(p, find_key(p, "from")->col, "%s takes its inputs by name, not from=", p->kw);
        return false;
    }
    int ids[CL_MAX_INPUTS], n = 0;
    if (is_add && npositional(p) == 1) ids[n++] = p->prev;
    for (int i = 0; i < npositional(p); i++) {
        const arg *a = positional(p, i);
        int t = name_ref(p, a->key, a->col);
        if (t < 0) return false;
        ids[n++] = t;
    }
    return finish_line(p, is_add ? cl_add(p->m, ids[0], ids[1]) : cl_concat(p->m, ids, n));
}

bool cl_build_add(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return merge_line(p, true);
}

bool cl_build_concat(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return merge_line(p, false);
}

static bool plain_line(parser *p, int (*layer)(cl_model *, int)) {
    if (!check_args(p)) return false;
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, layer(p->m, in));
}

bool cl_build_gap(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return plain_line(p, cl_global_avgpool);
}

bool cl_build_flatten(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    return plain_line(p, cl_flatten);
}

bool cl_build_linear(parser *p, const cl_layer_kind *kind) {
    if (!check_args(p)) return false;
    const arg *o = positional(p, 0);
    int out;
    if (!int_value(p, o->key, o->col, "output features", (long)kind->pos_lo, (long)kind->pos_hi,
                   &out))
        return false;
    bool bias = true;
    if (!key_bool(p, "bias", &bias)) return false;
    int in = line_input(p);
    if (in < 0) return false;
    return finish_line(p, cl_linear(p->m, in, out, !bias));
}

bool cl_build_defaults(parser *p, const cl_layer_kind *kind) {
    (void)kind;
    if (!check_args(p)) return false;
    if (find_key(p, "as") || find_key(p, "from")) {
        fail_at(p, p->kwcol, "defaults takes no as= or from=");
        return false;
    }
    defaults d = p->def;
    const arg *a;
    if ((a = find_key(p, "norm")) && !norm_kind(p, a, &d.norm)) return false;
    if ((a = find_key(p, "act")) && !act_kind(p, a, &d.act)) return false;
    if (!key_int(p, "num_groups", &d.num_groups) || !key_float(p, "eps", &d.eps) ||
        !key_float(p, "momentum", &d.momentum) || !key_float(p, "slope", &d.slope) ||
        !key_float(p, "dropout", &d.dropout))
        return false;
    if ((a = find_key(p, "init")) && !init_kind(p, a, &d.init)) return false;
    p->def = d;
    return true;
}

bool cl_build_input(parser *p, const cl_layer_kind *kind) {
    if (p->m) {
        fail_at(p, p->kwcol, "the input shape is already given; `input` must come once, first");
        return false;
    }
    if (!check_args(p)) return false;
    if (p->nargs != 1) {
        fail_at(p, p->args[0].col, "input takes only the shape CxHxW");
        return false;
    }
    const arg *a = positional(p, 0);
    char buf[64];
    long v[3];
    int n = 0;
    bool ok = strlen(a->key) < sizeof buf;
    if (ok) {
        snprintf(buf, sizeof buf, "%s", a->key);
        char *save = NULL;
        for (char *t = strtok_r(buf, "x", &save); t && ok; t = strtok_r(NULL, "x", &save)) {
            if (n == 3 || !parse_long(t, (long)kind->pos_lo, (long)kind->pos_hi, &v[n])) ok = false;
            n++;
        }
    }
    if (!ok || n != 3) {
        fail_at(p, a->col, "expected the sample shape CxHxW with each from %g to %g, e.g. 3x32x32, "
                           "got '%.60s'", kind->pos_lo, kind->pos_hi, a->key);
        return false;
    }
    cl_shape s = {(int)v[0], (int)v[1], (int)v[2]};
    if (p->input_override) s = *p->input_override;
    p->m = cl_model_new(s);
    if (!p->m) {
        fail_at(p, a->col, "out of memory");
        return false;
    }
    if (cl_model_error(p->m)[0]) {
        fail_at(p, a->col, "%s", cl_model_error(p->m));
        return false;
    }
    p->prev = cl_input(p->m);
    return true;
}

/* ---- lines ------------------------------------------------------------------ */

/* Split one line (NUL-terminated, comment already cut) into the keyword and args. */
static bool tokenize(parser *p, char *line) {
    p->kw = NULL;
    p->nargs = 0;
    char *s = line;
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        char *start = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (*s) *s++ = 0;
        int col = (int)(start - line) + 1;
        if (!p->kw) {
            p->kw = start;
            p->kwcol = col;
            continue;
        }
        if (p->nargs == MAX_ARGS) {
            fail_at(p, col, "too many arguments (at most %d)", MAX_ARGS);
            return false;
        }
        arg *a = &p->args[p->nargs++];
        char *eq = strchr(start, '=');
        a->key = start;
        a->col = col;
        a->val = NULL;
        a->vcol = col;
        if (eq) {
            *eq = 0;
            a->val = eq + 1;
            a->vcol = col + (int)(eq - start) + 1;
            if (!*a->key) {
                fail_at(p, col, "expected key=value, got '=%.40s'", a->val);
                return false;
            }
            if (!*a->val) {
                fail_at(p, a->vcol, "expected a value after '%.40s='", a->key);
                return false;
            }
        }
    }
    return true;
}

static bool parse_line(parser *p, char *line) {
    if (!tokenize(p, line) || !p->kw) return !p->failed;
    p->kind = cl_layer_kind_find(p->kw);
    if (!p->kind) {
        char list[512];
        cl_layer_list(CL_LIST_ALL, ", ", ", ", list, sizeof list);
        fail_at(p, p->kwcol, "unknown layer '%.40s'; expected one of: %s", p->kw, list);
        return false;
    }
    if (!p->m && p->kind->build != cl_build_input && p->kind->build != cl_build_defaults) {
        fail_at(p, p->kwcol, "expected `input CxHxW` (e.g. `input 3x32x32`) before the first layer");
        return false;
    }
    if (p->m) cl_model_set_source_line(p->m, p->line);
    return p->kind->build(p, p->kind);
}

/* The length of the valid UTF-8 sequence at s (at most avail bytes), or 0: no
 * overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_length(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || n > avail) return 0;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (n > 1 && (s[1] < lo || s[1] > hi)) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

cl_model *cl_parse_model(const char *text, size_t len, const char *path,
                         const cl_shape *input_override, char *err, size_t errlen) {
    parser p;
    memset(&p, 0, sizeof p);
    p.path = path ? path : "<model>";
    p.err = err;
    p.errlen = errlen;
    p.input_override = input_override;
    p.def = (defaults){CL_NORM_NONE, 2, 1e-5f, 0.1f, CL_ACT_RELU, 0.01f, 0, CL_INIT_DEFAULT};
    if (errlen) err[0] = 0;
    char line[MAX_LINE + 1];
    size_t pos = 0;
    int last_line = 0;
    /* A UTF-8 byte order mark, as some editors write, is skipped. */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) pos = 3;
    while (pos < len && !p.failed) {
        p.line++;
        size_t n = 0;
        bool comment = false;
        while (pos < len && text[pos] != '\n') {
            unsigned char c = (unsigned char)text[pos];
            if (c == '#') comment = true;
            if (!comment && (c < 0x20 || c >= 0x7f) && c != '\t' && c != '\r') {
                fail_at(&p, (int)n + 1,
                        "unexpected byte 0x%02x: a model file is plain text (is this the right file?)",
                        c);
                break;
            }
            if (c == 0 && comment) {
                fail_at(&p, (int)n + 1, "unexpected NUL byte: a model file is plain text");
                break;
            }
            /* Comments may hold any UTF-8 text (checkpoints keep the file in JSON,
               which is UTF-8), but no other bytes. */
            size_t seq = c >= 0x80 ? utf8_length((const unsigned char *)text + pos, len - pos) : 1;
            if (seq == 0) {
                fail_at(&p, (int)n + 1, "byte 0x%02x in a comment is not UTF-8: save the model "
                        "file as UTF-8 text", c);
                break;
            }
            if (seq > 1) { /* the whole character becomes one blank */
                if (n == MAX_LINE) {
                    fail_at(&p, MAX_LINE + 1, "line too long: at most %d characters", MAX_LINE);
                    break;
                }
                line[n++] = ' ';
                pos += seq;
                continue;
            }
            if (n == MAX_LINE) {
                fail_at(&p, MAX_LINE + 1, "line too long: at most %d characters", MAX_LINE);
                break;
            }
            line[n++] = comment || c == '\r' ? ' ' : (char)c;
            pos++;
        }
        if (p.failed) break;
        pos++; /* the newline */
        line[n] = 0;
        bool blank = true;
        for (size_t i = 0; i < n; i++)
            if (line[i] != ' ' && line[i] != '\t') blank = false;
        if (blank) continue;
        last_line = p.line;
        parse_line(&p, line);
    }
    if (!p.failed && (!p.m || cl_model_layer_count(p.m) == 0)) {
        p.line = p.m ? last_line : (last_line ? last_line : 1);
        fail_at(&p, 1, p.m ? "the model has no layers after `input`"
                           : "no model here: expected `input CxHxW` and at least one layer "
                             "(see docs/model-format.md)");
    }
    if (p.failed) {
        cl_model_free(p.m);
        return NULL;
    }
    return p.m;
}

cl_model *cl_load_model(const char *path, const cl_shape *input_override, char *err,
                        size_t errlen) {
    char *buf;
    size_t len;
    if (cl_read_file(path, "the model file", MAX_FILE_BYTES, &buf, &len, err, errlen) != CL_OK)
        return NULL;
    cl_model *m = cl_parse_model(buf, len, path, input_override, err, errlen);
    free(buf);
    return m;
}
