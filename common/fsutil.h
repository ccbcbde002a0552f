/* fsutil: file-system helpers the runner, the test API and the tests
 * share. */
#ifndef HANDOFF_FSUTIL_H
#define HANDOFF_FSUTIL_H

/* Removes path and, if it is a directory, everything below it, without
 * following symbolic links (a link is removed, not what it points to).
 * Best effort: what cannot be removed stays. NULL does nothing. */
void fs_remove_tree(const char *path);

#endif
