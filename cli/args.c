/* args.c: the one option parser of every command: reads --name VALUE, --name=VALUE
 * and flags into a command's options struct as its table (cli_option rows) says,
 * checks each value's kind and range, and prints --help from the same table. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define INT_MAX_DEFAULT 2000000000.0

const cli_option *cli_find_option(const cli_option *table, const char *name) {
    for (const cli_option *o = table; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

const char *cli_option_arg(const cli_option *o) {
    if (o->kind == OPT_FLAG) return "";
    if (o->arg) return o->arg;
    switch (o->kind) {
    case OPT_INT: return "N";
    case OPT_FLOAT:
    case OPT_DOUBLE: return "X";
    case OPT_LIST: return "LIST";
    case OPT_SHAPE: return "CxHxW";
    default: return "S";
    }
}

/* The range of a numeric option; false when any value is allowed. */
static bool option_range(const cli_option *o, double *lo, double *hi) {
    if (o->kind != OPT_INT && o->kind != OPT_FLOAT && o->kind != OPT_DOUBLE) return false;
    *lo = o->min;
    *hi = o->max;
    if (o->min == 0 && o->max == 0) {
        if (o->kind != OPT_INT) return false;
        *hi = INT_MAX_DEFAULT;
    }
    return true;
}

/* "1 to 100", "0 (excluded) to 1": the range as the messages say it. */
static void range_text(const cli_option *o, char *buf, size_t len) {
    double lo, hi;
    if (!option_range(o, &lo, &hi)) {
        snprintf(buf, len, "any number");
        return;
    }
    if (o->kind == OPT_INT)
        snprintf(buf, len, "%lld to %lld", (long long)lo, (long long)hi);
    else
        snprintf(buf, len, "%g%s to %g", lo, o->min_open ? " (excluded)" : "", hi);
}

void cli_option_notes(const cli_option *o, char *buf, size_t len) {
    double lo = 0, hi = 0;
    bool ranged = option_range(o, &lo, &hi) && !(o->kind == OPT_INT && o->min == 0 && o->max == 0);
    ranged = ranged || o->choices;
    buf[0] = 0;
    if (!o->def && !ranged) return;
    char range[96] = "";
    if (o->choices)
        snprintf(range, sizeof range, "%s", o->choices);
    else if (ranged && o->kind == OPT_INT)
        snprintf(range, sizeof range, "%lld..%lld", (long long)lo, (long long)hi);
    else if (ranged)
        snprintf(range, sizeof range, "%s%g..%g", o->min_open ? ">" : "", lo, hi);
    snprintf(buf, len, "(%s%s%s%s)", ranged ? range : "", ranged && o->def ? "; " : "",
             o->def ? "default " : "", o->def ? o->def : "");
}

static bool bad_value(const char *command, const cli_option *o, const char *what,
                      const char *value) {
    cli_error("%s: --%s: expected %s, got '%s'", command, o->name, what, value);
    return false;
}

/* A whole number: an optional '-', digits, and "_" or "," between them. */
static bool parse_int(const char *s, long long *out) {
    bool neg = *s == '-';
    long long v;
    if (!cli_parse_count(s + neg, &v)) return false;
    *out = neg ? -v : v;
    return true;
}

static bool set_list(const char *command, const cli_option *o, char *opts, const char *value) {
    int *list = (int *)(opts + o->offset), n = 0;
    const char *p = value;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1000000 || n == o->max_items ||
            (*end && *end != ','))
            return bad_value(command, o, "comma-separated whole numbers, e.g. 10,15", value);
        list[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    *(int *)(opts + o->count_offset) = n;
    return true;
}

/* A number within the option's range; false after printing the error. */
static bool set_number(const char *command, const cli_option *o, char *field, const char *value) {
    double v, lo, hi;
    if (o->kind == OPT_INT) {
        long long iv;
        if (!parse_int(value, &iv)) return bad_value(command, o, "a whole number", value);
        v = (double)iv;
    } else {
        char *end;
        errno = 0;
        v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v))
            return bad_value(command, o, "a number", value);
    }
    if (option_range(o, &lo, &hi) && (v < lo || v > hi || (o->min_open && v == lo))) {
        char range[96];
        range_text(o, range, sizeof range);
        cli_error("%s: --%s: expected %s from %s, got '%s'", command, o->name,
                  o->kind == OPT_INT ? "a whole number" : "a number", range, value);
        return false;
    }
    if (o->kind == OPT_INT) *(long long *)field = (long long)v;
    else if (o->kind == OPT_FLOAT) *(float *)field = (float)v;
    else *(double *)field = v;
    return true;
}

/* Whether value is one of "a|b|c". */
static bool is_choice(const char *choices, const char *value) {
    size_t len = strlen(value);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, value, len)) return true;
        p += n + (p[n] == '|');
    }
    return false;
}

bool cli_option_set(const cli_option *table, const char *command, void *opts, const char *name,
                    const char *value, bool *used_value) {
    const cli_option *o = cli_find_option(table, name);
    if (used_value) *used_value = false;
    if (!o) {
        cli_error("%s: unknown or incomplete option '--%s' (see `cnnlab %s --help`)", command,
                  name, command);
        return false;
    }
    char *field = (char *)opts + o->offset;
    if (o->kind == OPT_FLAG) {
        *(bool *)field = !value || strcmp(value, "0");
        return true;
    }
    if (!value) {
        cli_error("%s: --%s needs a value (%s)", command, name, cli_option_arg(o));
        return false;
    }
    if (used_value) *used_value = true;
    if (o->choices && !is_choice(o->choices, value)) {
        cli_error("%s: --%s: expected one of %s, got '%s'", command, name, o->choices, value);
        return false;
    }
    switch (o->kind) {
    case OPT_STR:
        if (strlen(value) >= CLI_STR_LEN) {
            cli_error("%s: --%s: value too long (at most %d bytes)", command, name,
                      CLI_STR_LEN - 1);
            return false;
        }
        snprintf(field, CLI_STR_LEN, "%s", value);
        return true;
    case OPT_TEXT: *(const char **)field = value; return true;
    case OPT_SHAPE:
        if (!cli_parse_shape(value, (cl_shape *)field))
            return bad_value(command, o, "CxHxW (e.g. 3x32x32)", value);
        return true;
    case OPT_LIST: return set_list(command, o, opts, value);
    default: return set_number(command, o, field, value);
    }
}

int cli_parse_status(int result) { return result == CLI_PARSE_HELP ? 0 : EXIT_USAGE; }

/* One "--name[=value]" word (and the next word as its value when it needs one). */
static bool parse_long_option(const cli_command *c, void *opts, int nargs, char **args, int *i) {
    const char *a = args[*i];
    char name[64];
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, a + 2, len);
    name[len] = 0;
    const cli_option *o = cli_find_option(c->options, name);
    const char *value = eq ? eq + 1 : NULL;
    if (!value && o && o->kind != OPT_FLAG && *i + 1 < nargs) value = args[*i + 1];
    bool used;
    if (!cli_option_set(c->options, c->name, opts, name, value, &used)) return false;
    if (used && !eq) (*i)++;
    return true;
}

static const cli_option *short_option(const cli_option *table, char name) {
    for (const cli_option *o = table; o->name; o++)
        if (o->short_name == name) return o;
    return NULL;
}

int cli_parse(const cli_command *c, void *opts, int nargs, char **args, const char **operands,
              int max_operands) {
    int n = 0;
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_help(c, stdout);
            return CLI_PARSE_HELP;
        }
        bool ok = true;
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            ok = parse_long_option(c, opts, nargs, args, &i);
        } else if (a[0] == '-' && a[1] && !a[2] && short_option(c->options, a[1])) {
            const cli_option *o = short_option(c->options, a[1]);
            bool used;
            ok = cli_option_set(c->options, c->name, opts, o->name,
                                o->kind != OPT_FLAG && i + 1 < nargs ? args[i + 1] : NULL,
                                &used);
            if (ok && used) i++;
        } else if (a[0] == '-' && a[1]) {
            cli_error("%s: unknown or incomplete option '%s' (see `cnnlab %s --help`)", c->name, a,
                      c->name);
            ok = false;
        } else if (n == max_operands) {
            cli_error("%s: unexpected argument '%s' (after %s)", c->name, a, c->operands);
            ok = false;
        } else {
            operands[n++] = a;
        }
        if (!ok) {
            cli_print_usage(c, stderr);
            return CLI_PARSE_ERROR;
        }
    }
    return n;
}

void cli_print_usage(const cli_command *c, FILE *f) {
    fprintf(f, "usage: cnnlab %s %s [options] (cnnlab %s --help)\n", c->name, c->operands, c->name);
}

/* text in lines of at most 80 columns, the first after `column` columns already
 * written, the others indented to it; words are never split. */
static void print_wrapped(FILE *f, const char *text, int column) {
    int at = column;
    while (*text) {
        while (*text == ' ') text++;
        size_t word = strcspn(text, " ");
        if (!word) break;
        if (at > column && at + 1 + (int)word > 80) {
            fprintf(f, "\n%*s", column, "");
            at = column;
        } else if (at > column) {
            fputc(' ', f);
            at++;
        }
        fwrite(text, 1, word, f);
        at += (int)word;
        text += word;
    }
    fputc('\n', f);
}

void cli_print_options(const cli_command *c, FILE *f) {
    for (const cli_option *o = c->options; o->name; o++) {
        char left[64], notes[160], line[512];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->kind == OPT_FLAG ? "" : " ",
                 cli_option_arg(o));
        cli_option_notes(o, notes, sizeof notes);
        snprintf(line, sizeof line, "%s%s%s", o->help, notes[0] ? " " : "", notes);
        fprintf(f, "  %-22s ", left);
        print_wrapped(f, line, 25);
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "print this help and exit");
}

void cli_print_help(const cli_command *c, FILE *f) {
    fprintf(f, "usage: cnnlab %s %s [options]\n\n%s\n", c->name, c->operands, c->description);
    fprintf(f, "\noptions:\n");
    cli_print_options(c, f);
}
