/* registry.h: the one table of layer kinds (src/io/registry.c). Each entry is a
 * model-file keyword with everything cnnlab knows about it: its positional argument,
 * the keys it accepts, the PyTorch module it equals, the op it adds (the cl_op with
 * the kernels, src/nn/ops/) and the builder that turns a parsed line into layers.
 * The parser's lookup and its "expected one of ..." messages, the summary's type
 * names (through the op) and the tables in docs/model-format.md all come from here,
 * and exporters hang off the same entries. Adding a layer: see docs/architecture.md. */
#ifndef CNNLAB_REGISTRY_H
#define CNNLAB_REGISTRY_H

#include <stdio.h>

#include "nn/model.h"

/* How a key's value is written. */
typedef enum {
    CL_KEY_INT,    /* a whole number */
    CL_KEY_PAIR,   /* N or HxW (height and width) */
    CL_KEY_PAD,    /* N, HxW or same */
    CL_KEY_FLOAT,  /* a number */
    CL_KEY_BOOL,   /* 0, 1, false, true */
    CL_KEY_NORM,   /* a normalisation keyword or none */
    CL_KEY_ACT,    /* an activation keyword or none */
    CL_KEY_NAME,   /* a tensor name */
    CL_KEY_INIT,   /* a convolution initialisation: default or dirac */
} cl_key_type;

/* One key=value option. Keys mean the same on every line that takes them. */
typedef struct {
    const char *name;     /* "k" */
    cl_key_type type;
    double lo, hi;        /* allowed range of numbers (of each of a pair's) */
    const char *fallback; /* the default, in words, for the docs */
    const char *meaning;  /* for the docs */
} cl_layer_key;

/* The parser's state while it reads one line (src/io/parse.c). */
typedef struct cl_parser cl_parser;

typedef struct cl_layer_kind cl_layer_kind;

struct cl_layer_kind {
    const char *keyword;     /* the model-file keyword: "conv" */
    const char *positional;  /* what its positional arguments are, for the docs and the
                                "needs ..." messages ("the number of output channels"),
                                or "" when it takes none */
    int min_pos, max_pos;    /* how many positional arguments */
    double pos_lo, pos_hi;   /* the allowed range of a numeric positional argument */
    const char *pos_field;   /* the builder option (cl_model_error_field) the first
                                positional stands for: "out", "k", ... or "" */
    const char *keys;        /* the keys it takes besides as= and from=, ", "-separated */
    const char *torch;       /* what the docs say of its PyTorch equivalent: "" or a note in
                                parentheses after op->torch_name, the torch.nn class the
                                op equals (which the summary shows); else the whole text */
    const cl_op *op;         /* the op a line adds, or NULL for lines that add none or
                                several (input, defaults, block, norm, act) */
    cl_act_kind act;         /* activations: the kind cl_activation() takes */
    cl_norm_kind norm;       /* normalisations: the kind cl_norm() takes */
    /* Read the parser's current line and add its layers; false on error (reported). */
    bool (*build)(cl_parser *p, const cl_layer_kind *kind);
};

/* Every layer kind, in the order the docs list them. */
extern const cl_layer_kind cl_layer_kinds[];
extern const int cl_layer_kind_count;
/* Every key, in the order the docs list them. */
extern const cl_layer_key cl_layer_keys[];
extern const int cl_layer_key_count;

const cl_layer_kind *cl_layer_kind_find(const char *keyword); /* or NULL */
const cl_layer_key *cl_layer_key_find(const char *name);      /* or NULL */

/* The keywords of every kind, of the activations or of the normalisations, joined
 * by sep, with last_sep before the last one: ", " and " or " give "bn, gn or ln". */
typedef enum { CL_LIST_ALL, CL_LIST_ACTS, CL_LIST_NORMS } cl_list_kind;
void cl_layer_list(cl_list_kind which, const char *sep, const char *last_sep, char *buf,
                   size_t len);

/* Write the two markdown tables of docs/model-format.md (keywords, keys). */
void cl_registry_write_docs(FILE *f);

/* The builders (src/io/parse.c): one per family of keywords. */
bool cl_build_input(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_defaults(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_conv(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_block(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_sepblock(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_maxpool(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_avgpool(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_gap(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_flatten(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_norm(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_activation(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_dropout(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_add(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_concat(cl_parser *p, const cl_layer_kind *kind);
bool cl_build_linear(cl_parser *p, const cl_layer_kind *kind);

#endif
