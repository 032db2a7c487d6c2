/* runstate.c: what keeps a run folder sound while `cnnlab train` uses it: a lock
 * (one run per folder; the kernel drops it on any exit, kill -9 included), the
 * removal of temporary files a killed writer left, and checked parsing of the
 * values a checkpoint's metadata holds (a number that does not parse in full is an
 * error naming its key, never a silent 0). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"

int cli_lock_run_folder(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, CLI_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_error("cannot lock the run folder %s: %s: %s", dir, path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            cli_error("%s is in use by another training run (process %s): wait for it to end, "
                      "stop it, or choose another folder", dir, pid[0] ? pid : "unknown");
        else
            cli_error("cannot lock the run folder %s: %s", dir, strerror(e));
        return -1;
    }
    /* Our PID, for the message a second run prints. */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* the lock holds without the PID; the message then says "unknown" */
    }
    return fd;
}

/* "NAME.tmp" or "NAME.tmp.PID": what the atomic writers leave when killed. */
static bool is_temporary(const char *name, long *pid) {
    const char *t = strstr(name, ".tmp");
    while (t && t[4] && t[4] != '.') t = strstr(t + 1, ".tmp");
    if (!t || t == name) return false;
    *pid = 0;
    if (!t[4]) return true;
    char *end;
    errno = 0;
    long v = strtol(t + 5, &end, 10);
    if (end == t + 5 || *end || errno || v <= 0) return false;
    *pid = v;
    return true;
}

int cli_remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        if (!is_temporary(e->d_name, &pid)) continue;
        /* Another live process's file is left alone; ours cannot exist yet. */
        if (pid && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}

/* ---- checked metadata values ---------------------------------------------------- */

bool cli_meta_long(const char *text, long min, long max, long *out) {
    if (!text || !*text) return false;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_meta_u64(const char *text, uint64_t *out) {
    if (!text || *text < '0' || *text > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno) return false;
    *out = (uint64_t)v;
    return true;
}

/* Doubles, separated by sep, exactly n of them, all finite. */
bool cli_meta_doubles(const char *text, char sep, double *v, int n) {
    if (!text) return false;
    const char *s = text;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(v[i])) return false;
        s = end;
        if (i + 1 < n) {
            if (*s != sep) return false;
            s++;
        }
    }
    return *s == 0;
}

bool cli_meta_floats(const char *text, float *v, int n) {
    double d[8];
    if (n < 1 || n > 8 || !cli_meta_doubles(text, ',', d, n)) return false;
    for (int i = 0; i < n; i++) v[i] = (float)d[i];
    return true;
}
