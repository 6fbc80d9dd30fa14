/* atomic_file.h — write a file under a temporary name in the same folder and
 * rename it into place, so a crash or an error never leaves half a file. */
#ifndef SYNTHCXR_ATOMIC_FILE_H
#define SYNTHCXR_ATOMIC_FILE_H

#include <stdio.h>

typedef struct atomic_file {
    FILE *f;          /* write here */
    char *path;       /* final name */
    char *tmp;        /* temporary name: "<dir>/.<name>.tmp.XXXXXX" */
} atomic_file;

/* Opens the temporary file; dies naming path if the folder is not writable. */
void atomic_open(atomic_file *a, const char *path);
/* 1 (the default): atomic_commit fsyncs before the rename. A program writing
 * many small reproducible files (cxrphantom) may set 0: the rename still
 * never shows half a file, only durability across a power cut is given up. */
extern int atomic_file_fsync;

/* Flushes, syncs and renames into place; dies (removing the temporary) on error. */
void atomic_commit(atomic_file *a);
/* Removes the temporary file; the final name is untouched. */
void atomic_abort(atomic_file *a);

#endif
