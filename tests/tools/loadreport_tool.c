/* handoff-loadreport: renders a load report JSON file (handoff.load.report/1)
 * as text, JUnit or HTML, or compares two, for development and for the
 * browser test of the HTML report.
 *
 *   handoff-loadreport text|text-color|junit|html REPORT.json
 *   handoff-loadreport diff [--json] [--tolerance X] A.json B.json
 *
 * Writes to stdout. Exits 0, 1 when diff found a regression, 2 on bad
 * usage or an invalid document. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "loaddiff.h"
#include "loadreport.h"

static json_t *load(const char *path)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);

    if (!doc) {
        fprintf(stderr, "handoff-loadreport: %s:%d: %s\n", path, je.line,
                je.text);
    }
    return doc;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: handoff-loadreport text|text-color|junit|html REPORT\n"
            "       handoff-loadreport diff [--json] [--tolerance X] A B\n");
    return 2;
}

static int diff(int argc, char **argv)
{
    double tolerance = -1;
    bool as_json = false;
    json_t *a = NULL;
    json_t *b = NULL;
    json_t *d = NULL;
    struct buf out;
    char err[256];
    int i = 2;
    int rc = 2;

    buf_init(&out, 0);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (strcmp(argv[i], "--tolerance") == 0 && i + 1 < argc) {
            tolerance = strtod(argv[++i], NULL);
        } else {
            return usage();
        }
    }
    if (argc - i != 2) {
        return usage();
    }
    a = load(argv[i]);
    b = a ? load(argv[i + 1]) : NULL;
    if (!b) {
        goto done;
    }
    if (loaddiff(a, b, tolerance, &d, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "handoff-loadreport: %s\n", err);
        goto done;
    }
    if (as_json) {
        char *s = json_dumps(d, JSON_INDENT(1) | JSON_REAL_PRECISION(10));

        buf_adds(&out, s);
        buf_addc(&out, '\n');
        free(s);
    } else if (loaddiff_text(d, &out, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "handoff-loadreport: %s\n", err);
        goto done;
    }
    fwrite(buf_str(&out), 1, out.len, stdout);
    rc = loaddiff_has_regression(d) ? 1 : 0;
done:
    json_decref(d);
    json_decref(b);
    json_decref(a);
    buf_cleanup(&out);
    return rc;
}

int main(int argc, char **argv)
{
    const char *fmt = argc > 1 ? argv[1] : "";
    json_t *doc = NULL;
    struct buf out;
    char err[256];
    int rc;

    if (strcmp(fmt, "diff") == 0) {
        return diff(argc, argv);
    }
    if (argc != 3) {
        return usage();
    }
    doc = load(argv[2]);
    if (!doc) {
        return 2;
    }
    buf_init(&out, 0);
    if (strcmp(fmt, "text") == 0 || strcmp(fmt, "text-color") == 0) {
        rc = loadreport_text(doc, &out, strcmp(fmt, "text-color") == 0, err,
                             sizeof(err));
    } else if (strcmp(fmt, "junit") == 0) {
        rc = loadreport_junit(doc, &out, err, sizeof(err));
    } else if (strcmp(fmt, "html") == 0) {
        rc = loadreport_html(doc, &out, err, sizeof(err));
    } else {
        json_decref(doc);
        buf_cleanup(&out);
        return usage();
    }
    if (rc != ST_OK) {
        fprintf(stderr, "handoff-loadreport: %s: %s\n", argv[2], err);
    } else {
        fwrite(buf_str(&out), 1, out.len, stdout);
    }
    json_decref(doc);
    buf_cleanup(&out);
    return rc == ST_OK ? 0 : 2;
}
