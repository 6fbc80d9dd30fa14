/* atomic_file.c — temp name + fsync + rename. */
#include "atomic_file.h"
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_file_fsync = 1;

void atomic_open(atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    if (slash)
        a->tmp = xasprintf("%.*s/.%s.tmp.XXXXXX", (int)(slash - path), path, slash + 1);
    else
        a->tmp = xasprintf(".%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) die("cannot create a temporary file for %s: %s", path, strerror(errno));
    /* mkstemp makes 0600; give the file the usual permissions the umask allows. */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    a->f = fdopen(fd, "wb");
    if (!a->f) die("cannot open %s: %s", a->tmp, strerror(errno));
}

void atomic_commit(atomic_file *a) {
    int bad = fflush(a->f) != 0 || ferror(a->f);
    int err = errno;
    if (!bad && atomic_file_fsync && fsync(fileno(a->f)) != 0 && errno != EINVAL) { bad = 1; err = errno; }
    if (fclose(a->f) != 0 && !bad) { bad = 1; err = errno; }
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        die("cannot write %s: %s", a->path, strerror(err));
    }
    if (rename(a->tmp, a->path) != 0) {
        err = errno;
        unlink(a->tmp);
        die("cannot rename %s to %s: %s", a->tmp, a->path, strerror(err));
    }
    free(a->tmp);
    free(a->path);
    a->tmp = a->path = NULL;
}

void atomic_abort(atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}
