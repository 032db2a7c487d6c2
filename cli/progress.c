/* progress.c: the per-epoch progress display. On a terminal it redraws one line in
 * tqdm's familiar style (loss=0.93 acc=68.1% 100%|##########| 391/391 [00:12<00:00,
 * 32.1it/s]) at most ten times a second; otherwise (a log file, CI) it prints a plain
 * line at every tenth of the epoch. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void clock_str(char *buf, size_t len, double s) {
    if (s < 0 || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%02ld:%02ld", t / 60, t % 60);
}

void progress_start(progress *p, const char *prefix, int total, bool tty) {
    memset(p, 0, sizeof *p);
    p->tty = tty;
    p->total = total > 0 ? total : 1;
    p->t0 = now_seconds();
    p->next_log = 1;
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
}

void progress_update(progress *p, int done, double loss, double acc) {
    double t = now_seconds(), elapsed = t - p->t0;
    double rate = elapsed > 0 ? done / elapsed : 0;
    if (p->tty) {
        if (done < p->total && t - p->last_draw < 0.1) return;
        p->last_draw = t;
        char el[32], left[32], bar[64] = "";
        clock_str(el, sizeof el, elapsed);
        clock_str(left, sizeof left, rate > 0 ? (p->total - done) / rate : 0);
        /* a 20-cell bar with eighths, as tqdm draws it */
        static const char *const eighths[] = {"", "\u258f", "\u258e", "\u258d", "\u258c",
                                              "\u258b", "\u258a", "\u2589"};
        int cells = 20, units = (int)((double)done / p->total * cells * 8);
        size_t n = 0;
        for (int i = 0; i < cells; i++) {
            const char *c = units >= 8 ? "\u2588" : units > 0 ? eighths[units] : " ";
            units -= 8;
            size_t l = strlen(c);
            if (n + l < sizeof bar) {
                memcpy(bar + n, c, l);
                n += l;
            }
        }
        bar[n] = 0;
        fprintf(stdout, "\r%s loss=%.4f acc=%.1f%% %3d%%|%s| %d/%d [%s<%s, %.1fit/s]\033[K", p->prefix,
                loss, 100 * acc, done * 100 / p->total, bar, done, p->total, el, left, rate);
        fflush(stdout);
    } else if (done * 10 >= p->next_log * p->total) {
        while (done * 10 >= p->next_log * p->total) p->next_log++;
        fprintf(stdout, "%s batch %d/%d loss=%.4f acc=%.2f%% %.1fit/s\n", p->prefix, done, p->total,
                loss, 100 * acc, rate);
        fflush(stdout);
    }
}

void progress_end(progress *p) {
    if (p->tty) fputc('\n', stdout);
}
