/* test_registry.c: the layer registry (src/io/registry.c) against itself, the parser
 * and docs/model-format.md. Every key a kind takes has a type and range; every kind
 * parses; each kind's op names a PyTorch class; and the two tables of the docs are
 * exactly what cl_registry_write_docs() renders (run `build/tests/test_registry
 * --print` to get them after changing the registry). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/registry.h"

#define DOCS "docs/model-format.md"

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap + 1);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) abort();
            buf = nb;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void check_keys(void) {
    t_begin("registry/every key of every kind is in the key table");
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        char keys[256];
        snprintf(keys, sizeof keys, "%s", k->keys);
        char *save = NULL;
        for (char *t = strtok_r(keys, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
            if (!cl_layer_key_find(t)) t_fail("%s takes '%s', which has no entry", k->keyword, t);
        if (!k->build) t_fail("%s has no builder", k->keyword);
        if (k->op && !k->op->torch_name[0]) t_fail("%s's op has no PyTorch class", k->keyword);
        if (cl_layer_kind_find(k->keyword) != k) t_fail("%s is listed twice", k->keyword);
    }
    for (int i = 0; i < cl_layer_key_count; i++) {
        const cl_layer_key *key = &cl_layer_keys[i];
        bool used = !strcmp(key->name, "as") || !strcmp(key->name, "from");
        for (int j = 0; j < cl_layer_kind_count && !used; j++) {
            char keys[256];
            snprintf(keys, sizeof keys, ", %s,", cl_layer_kinds[j].keys);
            char pat[64];
            snprintf(pat, sizeof pat, " %s,", key->name);
            used = strstr(keys, pat) != NULL;
        }
        if (!used) t_fail("key '%s' is taken by no kind", key->name);
    }
    t_end();
}

/* Each kind builds a model on its own line, and activations and norms also as the
 * act= and norm= of a block, so a registry entry cannot be unreachable. */
static void check_parse(void) {
    t_begin("registry/every kind parses");
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        if (!strcmp(k->keyword, "input") || !strcmp(k->keyword, "defaults")) continue;
        char text[256], err[512];
        const char *args = k->min_pos == 0 ? "" : !strcmp(k->keyword, "add") ? " input"
                                               : !strcmp(k->keyword, "concat") ? " input input"
                                                                               : " 4";
        const char *before = !strcmp(k->keyword, "linear") ? "gap\n" : "";
        snprintf(text, sizeof text, "input 4x6x6\ndefaults norm=bn\n%s%s%s\n", before, k->keyword,
                 !strcmp(k->keyword, "maxpool") || !strcmp(k->keyword, "avgpool") ? " 2" : args);
        cl_model *m = cl_parse_model(text, strlen(text), k->keyword, NULL, err, sizeof err);
        if (!m) {
            t_fail("%s", err);
            continue;
        }
        const char *op = cl_model_layer(m, cl_model_layer_count(m) - 1).op;
        if (k->op && strcmp(op, k->op->name)) t_fail("%s added %s, not %s", k->keyword, op, k->op->name);
        cl_model_free(m);
        if (k->act != CL_ACT_NONE || k->norm != CL_NORM_NONE) {
            snprintf(text, sizeof text, "input 4x6x6\nblock 4 %s=%s\n",
                     k->act != CL_ACT_NONE ? "act" : "norm", k->keyword);
            m = cl_parse_model(text, strlen(text), k->keyword, NULL, err, sizeof err);
            if (!m) {
                t_fail("%s", err);
                continue;
            }
            op = cl_model_layer(m, 1).op;
            if (strcmp(op, k->op->name)) t_fail("block with %s added %s", k->keyword, op);
            cl_model_free(m);
        }
    }
    t_end();
}

/* The parser's "expected ..." messages list every keyword, activation and norm. */
static void check_messages(void) {
    t_begin("registry/error messages list the registry's keywords");
    static const char *const bad[] = {"input 3x4x4\nswish\n", "input 3x4x4\nblock 4 act=swish\n",
                                      "input 3x4x4\nblock 4 norm=rms\n", "input 3x4x4\nact\n"};
    char err[4][1024];
    for (int i = 0; i < 4; i++) {
        const char *text = i < 3 ? bad[i] : "input 3x4x4\ndefaults act=none\nact\n";
        cl_model *m = cl_parse_model(text, strlen(text), "t.net", NULL, err[i], sizeof err[i]);
        if (m) {
            t_fail("'%s' parsed", text);
            cl_model_free(m);
            err[i][0] = 0;
        }
    }
    for (int i = 0; i < cl_layer_kind_count; i++) {
        const cl_layer_kind *k = &cl_layer_kinds[i];
        char word[64];
        snprintf(word, sizeof word, " %s", k->keyword);
        if (!strstr(err[0], word)) t_fail("'%s' does not list %s", err[0], k->keyword);
        if (k->act != CL_ACT_NONE && (!strstr(err[1], word) || !strstr(err[3], k->keyword)))
            t_fail("the act= messages do not list %s: '%s', '%s'", k->keyword, err[1], err[3]);
        if (k->norm != CL_NORM_NONE && !strstr(err[2], word))
            t_fail("'%s' does not list %s", err[2], k->keyword);
    }
    t_end();
}

static void check_docs(void) {
    t_begin("registry/the tables of " DOCS " are the registry's");
    FILE *tables = tmpfile();
    FILE *docs = fopen(DOCS, "rb");
    if (!tables || !docs) {
        t_fail("cannot open %s or a temporary file", DOCS);
    } else {
        cl_registry_write_docs(tables);
        rewind(tables);
        size_t nt, nd;
        char *want = read_all(tables, &nt), *text = read_all(docs, &nd);
        /* each table (they are separated by a blank line) must appear whole */
        for (char *table = want, *next; table && *table; table = next) {
            next = strstr(table, "\n\n");
            if (next) *next = 0, next += 2;
            if (strstr(text, table)) continue;
            char *save = NULL;
            for (char *row = strtok_r(table, "\n", &save); row; row = strtok_r(NULL, "\n", &save))
                if (!strstr(text, row)) {
                    t_fail("%s lacks the row '%s'", DOCS, row);
                    break;
                }
            t_fail("a table differs from the registry's (build/tests/test_registry --print "
                   "prints them)");
        }
        free(want);
        free(text);
    }
    if (tables) fclose(tables);
    if (docs) fclose(docs);
    t_end();
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print")) {
        cl_registry_write_docs(stdout);
        return 0;
    }
    check_keys();
    check_parse();
    check_messages();
    check_docs();
    return t_finish();
}
