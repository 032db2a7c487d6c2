/* runs.c: reading what `cnnlab train` leaves in a run folder (metrics.csv,
 * config.txt) for report and compare, and the HTML pieces both write: a page
 * with its own style sheet, escaped text, and PNGs embedded as data: URIs so the
 * page needs no other file and no network. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util/util.h"

char *cli_read_text(const char *path, size_t max_bytes) {
    char *text, err[4400];
    if (cl_read_file(path, "the file", max_bytes, &text, NULL, err, sizeof err) != CL_OK) {
        cli_error("%s", err);
        return NULL;
    }
    return text;
}

#define METRICS_COLUMNS 9

void cli_metrics_free(cli_metrics *m) {
    double **cols[METRICS_COLUMNS] = {&m->epoch, &m->lr, &m->train_loss, &m->train_acc,
                                      &m->test_loss, &m->test_acc, &m->seconds, &m->val_loss,
                                      &m->val_acc};
    for (int i = 0; i < METRICS_COLUMNS; i++) free(*cols[i]);
    memset(m, 0, sizeof *m);
}

bool cli_read_metrics(const char *run_dir, cli_metrics *m) {
    memset(m, 0, sizeof *m);
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    char *text = cli_read_text(path, 64u << 20);
    if (!text) return false;
    /* the seven columns of every run, then val_loss,val_acc with --val-split */
    static const char header[] = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds";
    static const char val_columns[] = ",val_loss,val_acc";
    if (strncmp(text, header, sizeof header - 1) != 0) {
        cli_error("%s:1: expected the header '%s'", path, header);
        free(text);
        return false;
    }
    const char *rest = text + sizeof header - 1;
    m->has_val = !strncmp(rest, val_columns, sizeof val_columns - 1);
    if (m->has_val) rest += sizeof val_columns - 1;
    if (*rest != '\n' && *rest != '\r' && *rest != 0) {
        cli_error("%s:1: expected the header '%s' or '%s%s'", path, header, header, val_columns);
        free(text);
        return false;
    }
    int ncols = m->has_val ? 9 : 7;
    int lines = 0;
    for (const char *s = text; *s; s++) lines += *s == '\n';
    double **cols[METRICS_COLUMNS] = {&m->epoch, &m->lr, &m->train_loss, &m->train_acc,
                                      &m->test_loss, &m->test_acc, &m->seconds, &m->val_loss,
                                      &m->val_acc};
    for (int i = 0; i < METRICS_COLUMNS; i++) {
        *cols[i] = malloc((size_t)(lines + 1) * sizeof(double));
        if (!*cols[i]) {
            cli_error("out of memory");
            cli_metrics_free(m);
            free(text);
            return false;
        }
    }
    const char *s = strchr(text, '\n');
    int line = 1;
    while (s && *++s) {
        line++;
        if (*s == '\n') continue;
        for (int i = 0; i < ncols; i++) {
            char *end;
            (*cols[i])[m->n] = strtod(s, &end);
            char want = i < ncols - 1 ? ',' : '\n';
            if (end == s || (*end != want && !(i == ncols - 1 && *end == 0))) {
                cli_error("%s:%d: expected %d numbers separated by commas (a row per epoch)", path,
                          line, ncols);
                cli_metrics_free(m);
                free(text);
                return false;
            }
            s = end + (i < ncols - 1);
        }
        if (!m->has_val) m->val_loss[m->n] = m->val_acc[m->n] = NAN;
        m->n++;
        s = strchr(s, '\n');
    }
    free(text);
    return true;
}

bool cli_run_config(const char *run_dir, const char *key, char *buf, size_t len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[8192];
    size_t klen = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            line[strcspn(line, "\r\n")] = 0;
            snprintf(buf, len, "%s", line + klen + 1);
            found = true;
        }
    }
    fclose(f);
    return found;
}

bool cli_mkdirs(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST) return false;
        *p = '/';
    }
    return !mkdir(tmp, 0777) || errno == EEXIST;
}

FILE *cli_atomic_open(cli_atomic_file *a, const char *path) {
    int n = snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path);
    a->f = n < (int)sizeof a->path ? fopen(a->tmp, "w") : NULL;
    if (!a->f) cli_error("%s: cannot write: %s", a->tmp, n < (int)sizeof a->path ? strerror(errno) : "path too long");
    return a->f;
}

bool cli_atomic_close(cli_atomic_file *a, bool keep) {
    bool ok = !ferror(a->f);
    ok = fclose(a->f) == 0 && ok;
    a->f = NULL;
    if (keep && !ok) cli_error("%s: write error: %s", a->tmp, strerror(errno));
    if (keep && ok && rename(a->tmp, a->path) != 0) {
        cli_error("%s: cannot rename %s to it: %s", a->path, a->tmp, strerror(errno));
        ok = false;
    }
    if (!keep || !ok) unlink(a->tmp);
    return keep && ok;
}

/* ---- HTML ---------------------------------------------------------------------- */

void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void html_begin(FILE *f, const char *title) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    html_text(f, title);
    fputs("</title>\n<style>\n"
          "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;"
          "padding:0 1em;color:#222;line-height:1.4}\n"
          "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;"
          "padding-bottom:.2em;margin-top:1.8em}\n"
          "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}\n"
          "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}\n"
          "th{background:#f4f6f8}td.l,th.l{text-align:left}\n"
          "tr.best td{background:#eaf4ea;font-weight:bold}\n"
          "pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.7em;overflow-x:auto;font-size:.8em}\n"
          "img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}\n"
          "figure{margin:1em 0}figcaption{color:#555;font-size:.9em}\n"
          ".facts{color:#555}\n"
          "</style>\n</head>\n<body>\n", f);
}

void html_end(FILE *f) {
    fputs("<footer class=\"facts\"><p>Written by cnnlab " CNNLAB_VERSION
          ".</p></footer>\n</body>\n</html>\n", f);
}

bool html_png(FILE *f, const char *path, const char *alt) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(path, "rb");
    if (!in) {
        cli_error("%s: %s", path, strerror(errno));
        return false;
    }
    fputs("<img alt=\"", f);
    html_text(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    unsigned char in3[3];
    size_t got;
    while ((got = fread(in3, 1, 3, in)) > 0) {
        unsigned v = (unsigned)in3[0] << 16 | (got > 1 ? (unsigned)in3[1] << 8 : 0) |
                     (got > 2 ? in3[2] : 0);
        char out[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], got > 1 ? b64[v >> 6 & 63] : '=',
                       got > 2 ? b64[v & 63] : '='};
        fwrite(out, 1, 4, f);
        if (got < 3) break;
    }
    bool ok = !ferror(in);
    fclose(in);
    fputs("\">\n", f);
    if (!ok) cli_error("%s: read error", path);
    return ok;
}
