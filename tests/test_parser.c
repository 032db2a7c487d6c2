/* test_parser.c: the model-file parser. Valid files build the expected layers (block
 * expansion, defaults, names, skips, geometry); every malformed file gives an error
 * that names file:line:col and what was expected; hostile input (binary data, huge
 * numbers, very long lines, thousands of layers, random mutations of a real model)
 * gives an error or a model, never a crash. The mutation loop also runs under the
 * sanitizers (make asan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnlab.h"
#include "harness.h"

static cl_model *parse(const char *text, char *err, size_t errlen) {
    return cl_parse_model(text, strlen(text), "t.net", NULL, err, errlen);
}

/* ---- valid files --------------------------------------------------------- */

static void expect_ops(const char *name, const char *text, const char *ops) {
    t_begin("parse/%s", name);
    char err[512];
    cl_model *m = parse(text, err, sizeof err);
    if (!m) {
        t_fail("unexpected error: %s", err);
        t_end();
        return;
    }
    char got[1024] = "";
    for (int i = 0; i < cl_model_layer_count(m); i++) {
        if (i) strcat(got, " ");
        strncat(got, cl_model_layer(m, i).op, sizeof got - strlen(got) - 2);
    }
    if (strcmp(got, ops)) t_fail("layers '%s', expected '%s'", got, ops);
    cl_model_free(m);
    t_end();
}

static void test_valid(void) {
    expect_ops("block expands with defaults",
               "input 3x8x8\ndefaults norm=bn act=relu dropout=0.1\nblock 4 k=3 pad=1",
               "conv2d batchnorm2d relu dropout");
    expect_ops("block without dropout by default", "input 3x8x8\ndefaults norm=gn num_groups=2\nblock 4",
               "conv2d groupnorm relu");
    expect_ops("block overrides", "input 3x8x8\ndefaults norm=bn dropout=0.1\nblock 4 norm=none act=gelu dropout=0",
               "conv2d gelu");
    expect_ops("plain conv ignores defaults", "input 3x8x8\ndefaults norm=bn dropout=0.1\nconv 4",
               "conv2d");
    expect_ops("standalone layers",
               "input 3x8x8\ndefaults norm=ln act=leakyrelu\nnorm\nact\nbn\ngn 3\nln\nrelu\ngelu\n"
               "leakyrelu slope=0.2\ndropout\nmaxpool 2\navgpool k=2 stride=1\ngap\nflatten\nlinear 4",
               "layernorm leakyrelu batchnorm2d groupnorm layernorm relu gelu leakyrelu dropout "
               "maxpool2d avgpool2d gap flatten linear");
    expect_ops("skips by name",
               "# a comment line\n\ninput 3x8x8   # trailing comment\nconv 4 k=1 as=a\nconv 4 k=3 pad=1 as=b\n"
               "add a\nadd a b\nconcat a b input\nconv 2 k=1 from=a",
               "conv2d conv2d add add concat conv2d");

    expect_ops("a UTF-8 byte order mark is skipped", "\xef\xbb\xbfinput 3x8x8\nconv 4", "conv2d");
    expect_ops("UTF-8 in comments",
               "# r\xc3\xa9seau \xe2\x80\x94 \xf0\x9f\x90\x88\ninput 3x8x8 # \xe2\x86\x92\nconv 4",
               "conv2d");

    t_begin("parse/shapes and geometry");
    char err[512];
    cl_model *m = parse("input 3x32x32\nconv 8 k=3 stride=2 pad=same as=x\nconv 8 k=3x1 pad=1x0\n"
                        "conv 8 k=3 dilation=2 pad=same\nmaxpool k=3 stride=2 pad=1\nconcat x x\n"
                        "conv 6 groups=2 k=1 bias=0\ngap\nlinear 10",
                        err, sizeof err);
    if (!m) {
        t_fail("unexpected error: %s", err);
    } else {
        cl_shape s1 = cl_model_shape(m, cl_model_find(m, "x"));
        if (s1.c != 8 || s1.h != 16 || s1.w != 16) t_fail("stride 2 pad=same: %dx%dx%d", s1.c, s1.h, s1.w);
        cl_layer_info l1 = cl_model_layer(m, 1);
        if (l1.out.h != 16 || l1.out.w != 16) t_fail("k=3x1 pad=1x0: %dx%d", l1.out.h, l1.out.w);
        if (l1.rf != 7 || l1.rf_w != 3 || l1.jump != 2) t_fail("rf %lldx%lld jump %lld", (long long)l1.rf, (long long)l1.rf_w, (long long)l1.jump);
        cl_layer_info l2 = cl_model_layer(m, 2);
        if (l2.out.h != 16 || l2.rf != 15) t_fail("dilation 2: h %d rf %lld", l2.out.h, (long long)l2.rf);
        cl_layer_info l3 = cl_model_layer(m, 3);
        if (l3.out.h != 8) t_fail("maxpool k3 s2 p1: h %d", l3.out.h);
        cl_layer_info l5 = cl_model_layer(m, 5);
        if (l5.params != 6 * 8 || l5.macs != 16 * 16 * 48) t_fail("conv groups=2 k=1: params %lld macs %lld", (long long)l5.params, (long long)l5.macs);
        cl_layer_info l7 = cl_model_layer(m, 7);
        if (l7.params != 6 * 10 + 10) t_fail("linear params %lld", (long long)l7.params);
        cl_model_free(m);
    }
    t_end();

    t_begin("parse/input override");
    cl_shape in = {1, 28, 28};
    m = cl_parse_model("input 3x32x32\nconv 4", 20, "t.net", &in, err, sizeof err);
    if (!m || cl_model_shape(m, 0).c != 1 || cl_model_shape(m, 1).h != 26) t_fail("override not applied");
    cl_model_free(m);
    t_end();
}

/* ---- errors ---------------------------------------------------------------- */

static void expect_error(const char *name, const char *text, size_t len, const char *where,
                         const char *what) {
    t_begin("error/%s", name);
    char err[1024];
    cl_model *m = cl_parse_model(text, len, "t.net", NULL, err, sizeof err);
    if (m) {
        t_fail("parsed without error");
        cl_model_free(m);
    } else {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "t.net:%s: ", where);
        if (strncmp(err, prefix, strlen(prefix))) t_fail("'%s' does not start with '%s'", err, prefix);
        if (!strstr(err, what)) t_fail("'%s' does not say '%s'", err, what);
    }
    t_end();
}

#define ERR(name, text, where, what) expect_error(name, text, strlen(text), where, what)

static void test_errors(void) {
    ERR("empty file", "", "1:1", "expected `input CxHxW`");
    ERR("only comments", "# nothing\n\n   # here\n", "1:1", "expected `input CxHxW`");
    ERR("no layers", "input 3x8x8\n", "1:1", "no layers");
    ERR("layer before input", "conv 8", "1:1", "expected `input CxHxW`");
    ERR("input twice", "input 3x8x8\ninput 3x8x8", "2:1", "already given");
    ERR("bad input shape", "input 3x32", "1:7", "CxHxW");
    ERR("zero input", "input 0x32x32", "1:7", "CxHxW");
    ERR("unknown layer", "input 3x8x8\nconvv 8", "2:1", "unknown layer 'convv'");
    ERR("unknown option", "input 3x8x8\nconv 8 kk=3", "2:8", "unknown option 'kk' for conv");
    ERR("option of another layer", "input 3x8x8\nmaxpool 2 groups=2", "2:11", "unknown option 'groups'");
    ERR("option twice", "input 3x8x8\nconv 8 k=3 k=1", "2:12", "given twice");
    ERR("missing value", "input 3x8x8\nconv 8 k=", "2:10", "expected a value");
    ERR("missing key", "input 3x8x8\nconv 8 =3", "2:8", "expected key=value");
    ERR("bad number", "input 3x8x8\nconv 8x k=3", "2:6", "expected a whole number");
    ERR("negative number", "input 3x8x8\nconv -8", "2:6", "expected a whole number");
    ERR("huge number", "input 3x8x8\nconv 99999999999999999999999", "2:6", "from 1 to 65536");
    ERR("huge kernel", "input 3x8x8\nconv 8 k=100000000", "2:10", "expected a whole number");
    ERR("bad float", "input 3x8x8\ndropout 0.5.1", "2:9", "expected a number");
    ERR("dropout of 1", "input 3x8x8\ndropout 1", "2:9", "from 0 to 0.999");
    ERR("nan", "input 3x8x8\nleakyrelu slope=nan", "2:17", "expected a number");
    ERR("bad bool", "input 3x8x8\nconv 8 bias=yes", "2:13", "expected 0, 1, true or false");
    ERR("bad norm", "input 3x8x8\nblock 8 norm=batch", "2:14", "expected bn, gn, ln or none");
    ERR("missing channels", "input 3x8x8\nconv k=3", "2:5", "needs the number of output channels");
    ERR("extra positional", "input 3x8x8\nconv 8 3", "2:8", "too many arguments");
    ERR("positional on relu", "input 3x8x8\nrelu 3", "2:6", "takes no positional argument");
    ERR("pool without kernel", "input 3x8x8\nmaxpool", "2:8", "needs a kernel size");
    ERR("undefined skip", "input 3x8x8\nconv 8 as=a\nadd c9", "3:5", "unknown name 'c9'");
    ERR("undefined from", "input 3x8x8\nconv 8 from=nope", "2:13", "unknown name 'nope'");
    ERR("mismatched skip", "input 3x8x8\nconv 4 k=1 as=a\nconv 5 k=1\nadd a", "4:1", "add needs equal shapes");
    ERR("concat size mismatch", "input 3x8x8\nmaxpool 2 as=p\nconcat p input", "3:1", "equal height and width");
    ERR("duplicate name", "input 3x8x8\nconv 4 as=a\nconv 4 as=a", "3:11", "already used");
    ERR("name input", "input 3x8x8\nconv 4 as=input", "2:11", "not 'input'");
    ERR("bad name", "input 3x8x8\nconv 4 as=9x", "2:11", "expected a name");
    ERR("shape shrinks (conv)", "input 3x4x4\nconv 8 k=5", "2:8", "shrinks below 1x1");
    ERR("shape shrinks (pool)", "input 3x8x8\nmaxpool 2\nmaxpool 2\nmaxpool 2\nmaxpool 2", "5:9", "shrinks below 1x1");
    ERR("conv groups in", "input 6x8x8\nconv 8 groups=4", "2:8", "groups=4 does not divide 6 input channels");
    ERR("conv groups out", "input 6x8x8\nconv 8 groups=3", "2:8", "groups=3 does not divide 8 output channels");
    ERR("gn groups", "input 6x8x8\ngn 4", "2:4", "num_groups=4 does not divide 6 channels");
    ERR("gn groups key", "input 6x8x8\ngn num_groups=4", "2:4", "num_groups=4 does not divide 6 channels");
    ERR("gn groups from defaults", "input 6x8x8\ndefaults norm=gn num_groups=4\nblock 6", "3:1", "num_groups=4 does not divide 6 channels");
    ERR("norm without default", "input 3x8x8\nnorm", "2:1", "defaults norm=");
    ERR("pad same even kernel", "input 3x8x8\nconv 4 k=2 pad=same", "2:16", "odd kernel");
    ERR("pool pad too large", "input 3x8x8\nmaxpool k=2 pad=2", "2:13", "at most half the kernel");
    ERR("linear on a map", "input 3x8x8\nlinear 10", "2:1", "add `flatten` or `gap`");
    ERR("add with from", "input 3x8x8\nconv 3 as=a\nadd a from=a", "3:7", "by name");
    ERR("input too large", "input 65536x65536x65536\nrelu", "1:7", "not a valid CxHxW");
    ERR("binary garbage", "\x7f" "ELF\x02\x01\x01", "1:1", "unexpected byte 0x7f");
    ERR("utf-8 outside a comment", "input 3x8x8\nconv 8 k=3 \xc3\xa9", "2:12", "unexpected byte 0xc3");
    expect_error("NUL byte", "input 3x8x8\nconv\0 8", 17, "2:5", "unexpected byte 0x00");
    ERR("Latin-1 in a comment", "input 3x8x8  # caf\xe9\nconv 8", "1:19", "not UTF-8");
    ERR("truncated UTF-8 in a comment", "input 3x8x8\nconv 8 # \xe2\x82", "2:10", "not UTF-8");
    ERR("overlong UTF-8 in a comment", "input 3x8x8 # \xc0\xaf\nconv 8", "1:15", "not UTF-8");
    ERR("a BOM then an error", "\xef\xbb\xbfinput 3x8\nconv 8", "1:7", "CxHxW");

    /* a 10,000-character line */
    size_t n = 10000;
    char *longline = xmalloc(n + 32);
    strcpy(longline, "input 3x8x8\nconv 8 ");
    size_t len = strlen(longline);
    memset(longline + len, 'k', n);
    longline[len + n] = 0;
    ERR("very long line", longline, "2:4097", "line too long");
    free(longline);
}

/* ---- size ------------------------------------------------------------------ */

static char *repeat_lines(const char *head, const char *line, int count) {
    size_t hl = strlen(head), ll = strlen(line);
    char *t = xmalloc(hl + ll * (size_t)count + 1);
    memcpy(t, head, hl);
    for (int i = 0; i < count; i++) memcpy(t + hl + ll * (size_t)i, line, ll);
    t[hl + ll * (size_t)count] = 0;
    return t;
}

static void test_size(void) {
    t_begin("parse/5000 layers");
    char err[512];
    char *t = repeat_lines("input 3x8x8\n", "relu\n", 5000);
    cl_model *m = parse(t, err, sizeof err);
    if (!m) t_fail("error: %s", err);
    else if (cl_model_layer_count(m) != 5000) t_fail("%d layers", cl_model_layer_count(m));
    cl_model_free(m);
    free(t);
    t_end();

    t = repeat_lines("input 3x8x8\n", "relu\n", 30000);
    ERR("too many layers", t, "20002:1", "too many layers");
    free(t);

    t_begin("compile/refuses a huge plan");
    m = parse("input 64x2048x2048\nconv 64 k=1\nconv 64 k=1\nconv 64 k=1", err, sizeof err);
    if (!m) t_fail("parse error: %s", err);
    else {
        cl_compile_args a = {.max_batch = 128, .threads = 1};
        if (cl_model_compile(m, a) != CL_ERR_NOMEM) t_fail("compiled a plan of terabytes");
        else if (!strstr(cl_model_error(m), "GiB")) t_fail("message: %s", cl_model_error(m));
    }
    cl_model_free(m);
    t_end();
}

/* ---- mutations -------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void test_mutations(void) {
    static const char base[] =
        "input 3x32x32\ndefaults norm=bn num_groups=4 act=relu dropout=0.05\n"
        "block 16 k=3 pad=1\nblock 32 k=3 pad=1 as=c2\nconv 16 k=1\nmaxpool 2\n"
        "block 24 k=3 pad=1 as=c3\nblock 24 k=3 pad=1\nadd c3\ngn 4\nconcat c3 c3\n"
        "avgpool k=3 stride=2 pad=1\ngap\nflatten\nlinear 10 bias=0\n";
    static const char alphabet[] = "0123456789x=# \n.-abcgknps_";
    t_begin("parse/20000 mutated model files");
    char buf[sizeof base + 64], err[512];
    int parsed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = sizeof base - 1;
        memcpy(buf, base, len);
        int edits = 1 + next() % 4;
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = next() % len;
            switch (next() % 4) {
            case 0: buf[at] = alphabet[next() % (sizeof alphabet - 1)]; break;
            case 1: buf[at] = (char)(next() & 0xff); break;
            case 2: len = at; break; /* truncate */
            default:
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = alphabet[next() % (sizeof alphabet - 1)];
                    len++;
                }
            }
        }
        cl_model *m = cl_parse_model(buf, len, "fuzz.net", NULL, err, sizeof err);
        if (m) {
            parsed++;
            cl_model_free(m);
        } else if (strncmp(err, "fuzz.net:", 9)) {
            t_fail("error without file:line:col: %s", err);
            break;
        }
    }
    if (parsed == 0) t_fail("no mutation parsed: the loop exercised only the first error");
    t_end();
}

/* ---- files ------------------------------------------------------------------- */

static void test_files(void) {
    t_begin("load/a folder is named as a folder, a missing file as missing");
    char dir[256], err[512];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cnnlab-parser-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        t_fail("mkdtemp failed");
        return;
    }
    cl_model *m = cl_load_model(dir, NULL, err, sizeof err);
    if (m) t_fail("a folder parsed as a model");
    else if (!strstr(err, dir) || !strstr(err, "is a directory")) t_fail("folder: '%s'", err);
    cl_model_free(m);
    rmdir(dir);
    m = cl_load_model(dir, NULL, err, sizeof err);
    if (m || !strstr(err, "No such file")) t_fail("missing file: '%s'", m ? "(parsed)" : err);
    cl_model_free(m);
    t_end();
}

int main(void) {
    test_valid();
    test_files();
    test_errors();
    test_size();
    test_mutations();
    return t_finish();
}
