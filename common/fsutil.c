/* fsutil: see fsutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */

#include "fsutil.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void fs_remove_tree(const char *path)
{
    if (path) {
        /* Depth first (contents before their directory), 16 descriptors
         * at most, links not followed. */
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}
