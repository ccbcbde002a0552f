/* The HTML report of a load run: one page that opens from disk with no
 * network (file://, mail attachments, CI artifacts).
 *
 * The tables are rendered here, so they read without JavaScript and tests
 * can check them as text. The charts over the per-second series are drawn
 * by inline JavaScript into <svg> elements from the report document, which
 * is embedded in a <script type="application/json"> block: that keeps the
 * page's own data one parse away for anyone who saves it. A strict
 * Content-Security-Policy (nothing but the inline style and script) makes
 * the no-network promise hold even for a mistake in this file. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "jsonw.h"
#include "loadreport.h"
#include "xmlw.h"

/* Nesting of the embedded document past which values are written as null:
 * the report is 5 deep, deeper values are fields no reader knows, and the
 * writer recurses. */
#define EMBED_MAX_DEPTH 64

static const char page_css[] =
    ":root {\n"
    "  --bg: #fff; --fg: #1d2330; --mut: #5f6b7a; --line: #e3e7ee;\n"
    "  --card: #f6f8fb; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700;\n"
    "  --warnbg: #fff8c5; --s0: #2f6fdf; --s1: #e0822a; --s2: #c23b9a;\n"
    "  color-scheme: light dark;\n"
    "}\n"
    "@media (prefers-color-scheme: dark) {\n"
    "  :root {\n"
    "    --bg: #0f1419; --fg: #e6e9ee; --mut: #9aa5b1; --line: #2a313c;\n"
    "    --card: #171d24; --ok: #3fb950; --bad: #f85149; --warn: #d29922;\n"
    "    --warnbg: #2b2111; --s0: #6ea8fe; --s1: #f0a35e; --s2: #e27ac3;\n"
    "  }\n"
    "}\n"
    "body {\n"
    "  margin: 0; background: var(--bg); color: var(--fg);\n"
    "  font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", sans-serif;\n"
    "}\n"
    "main { max-width: 1240px; margin: 0 auto; padding: 24px; }\n"
    "h1 { font-size: 22px; margin: 0 10px 0 0; display: inline; }\n"
    "h2 {\n"
    "  font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;\n"
    "  border-bottom: 1px solid var(--line);\n"
    "}\n"
    ".badge {\n"
    "  display: inline-block; padding: 2px 10px; border-radius: 12px;\n"
    "  font-weight: 600; color: #fff; vertical-align: 3px;\n"
    "}\n"
    ".badge.ok { background: var(--ok); color: #fff; }\n"
    ".badge.bad { background: var(--bad); color: #fff; }\n"
    "dl.meta {\n"
    "  display: grid; grid-template-columns: max-content 1fr;\n"
    "  gap: 2px 16px; margin: 14px 0;\n"
    "}\n"
    "dl.meta dt { color: var(--mut); }\n"
    "dl.meta dd { margin: 0; }\n"
    ".warn {\n"
    "  background: var(--warnbg); border-left: 4px solid var(--warn);\n"
    "  padding: 8px 12px; margin: 12px 0;\n"
    "}\n"
    ".cards {\n"
    "  display: grid; gap: 10px; margin: 16px 0;\n"
    "  grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));\n"
    "}\n"
    ".card {\n"
    "  background: var(--card); border: 1px solid var(--line);\n"
    "  border-radius: 8px; padding: 10px 12px;\n"
    "}\n"
    ".card b { display: block; font-size: 20px; }\n"
    ".card span { color: var(--mut); font-size: 12px; }\n"
    ".charts {\n"
    "  display: grid; gap: 16px;\n"
    "  grid-template-columns: repeat(auto-fit, minmax(440px, 1fr));\n"
    "}\n"
    "figure {\n"
    "  margin: 0; background: var(--card); border: 1px solid var(--line);\n"
    "  border-radius: 8px; padding: 10px; position: relative;\n"
    "}\n"
    "figcaption { font-weight: 600; }\n"
    ".legend { min-height: 18px; }\n"
    ".legend span { margin-right: 12px; font-size: 12px; color: var(--mut); }\n"
    ".legend i {\n"
    "  display: inline-block; width: 12px; height: 3px; margin-right: 4px;\n"
    "  vertical-align: middle;\n"
    "}\n"
    "svg { width: 100%; height: auto; display: block; }\n"
    "svg text { fill: var(--mut); font-size: 11px; }\n"
    "svg .grid { stroke: var(--line); }\n"
    "svg .line { fill: none; stroke-width: 1.8; }\n"
    "svg .cursor { stroke: var(--mut); stroke-dasharray: 3 3; }\n"
    ".c0 { stroke: var(--s0); fill: var(--s0); background: var(--s0); }\n"
    ".c1 { stroke: var(--s1); fill: var(--s1); background: var(--s1); }\n"
    ".c2 { stroke: var(--s2); fill: var(--s2); background: var(--s2); }\n"
    "svg .line.c0, svg .line.c1, svg .line.c2 { fill: none; }\n"
    ".tip {\n"
    "  position: absolute; pointer-events: none; background: var(--bg);\n"
    "  border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px;\n"
    "  font-size: 12px; white-space: nowrap;\n"
    "  box-shadow: 0 2px 8px rgba(0, 0, 0, .15);\n"
    "}\n"
    ".wrap { overflow-x: auto; }\n"
    "table {\n"
    "  border-collapse: collapse; width: 100%;\n"
    "  font-variant-numeric: tabular-nums;\n"
    "}\n"
    "th, td {\n"
    "  padding: 5px 8px; border-bottom: 1px solid var(--line);\n"
    "  text-align: right; white-space: nowrap;\n"
    "}\n"
    "th { color: var(--mut); font-weight: 600; }\n"
    "th.l, td.l {\n"
    "  text-align: left; white-space: normal; overflow-wrap: anywhere;\n"
    "  min-width: 5em;\n"
    "}\n"
    "td.l span { white-space: nowrap; }\n"
    "tr.total td { font-weight: 600; }\n"
    ".ok { color: var(--ok); }\n"
    ".bad { color: var(--bad); }\n"
    ".bar { background: var(--s0); height: 10px; border-radius: 2px; }\n"
    "td.barcell { width: 40%; }\n"
    "details { margin: 10px 0; }\n"
    "summary { cursor: pointer; font-weight: 600; }\n"
    "footer { margin-top: 40px; color: var(--mut); font-size: 12px; }\n";

/* Draws the four charts from the embedded report. No string from the
 * report is ever parsed as markup: labels are set with textContent. The
 * SVG namespace is taken from the page's own <svg> elements, so the page
 * names no URL at all. */
static const char page_js[] =
    "(function () {\n"
    "  'use strict';\n"
    "  var doc = "
    "JSON.parse(document.getElementById('report-data').textContent);\n"
    "  var pts = doc.series;\n"
    "\n"
    "  function fmtMs(v) {\n"
    "    if (!(v > 0)) { return '0ms'; }\n"
    "    if (v < 1) { return (v * 1000).toFixed(0) + 'µs'; }\n"
    "    if (v < 10) { return v.toFixed(2) + 'ms'; }\n"
    "    if (v < 100) { return v.toFixed(1) + 'ms'; }\n"
    "    if (v < 1000) { return v.toFixed(0) + 'ms'; }\n"
    "    return (v / 1000).toFixed(v < 10000 ? 2 : 1) + 's';\n"
    "  }\n"
    "  function fmtNum(v) {\n"
    "    if (v >= 100 || v === Math.round(v)) { return v.toFixed(0); }\n"
    "    return v.toFixed(v >= 10 ? 1 : 2);\n"
    "  }\n"
    "  function fmtT(s) {\n"
    "    var m = Math.floor(s / 60);\n"
    "    return m ? m + 'm' + ('0' + Math.round(s % 60)).slice(-2) + 's' : s + "
    "'s';\n"
    "  }\n"
    "  /* The smallest 1, 2, 2.5 or 5 times a power of ten at or above v. */\n"
    "  function nice(v) {\n"
    "    if (!(v > 0)) { return 1; }\n"
    "    var e = Math.pow(10, Math.floor(Math.log10(v)));\n"
    "    var m = v / e;\n"
    "    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * "
    "e;\n"
    "  }\n"
    "  function add(parent, name, attrs, text) {\n"
    "    var e = document.createElementNS(parent.namespaceURI, name);\n"
    "    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, "
    "attrs[k]); });\n"
    "    if (text !== undefined) { e.textContent = text; }\n"
    "    parent.appendChild(e);\n"
    "    return e;\n"
    "  }\n"
    "\n"
    "  var W = 640, H = 230, L = 58, R = 14, T = 10, B = 26;\n"
    "\n"
    "  function draw(fig, lines, fmt) {\n"
    "    var svg = fig.querySelector('svg');\n"
    "    var legend = fig.querySelector('.legend');\n"
    "    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);\n"
    "    lines.forEach(function (ln, i) {\n"
    "      var s = document.createElement('span');\n"
    "      var sw = document.createElement('i');\n"
    "      sw.className = 'c' + i;\n"
    "      s.appendChild(sw);\n"
    "      s.appendChild(document.createTextNode(ln.name));\n"
    "      legend.appendChild(s);\n"
    "    });\n"
    "    if (!pts.length) {\n"
    "      add(svg, 'text', {x: W / 2, y: H / 2, 'text-anchor': 'middle',\n"
    "                        'class': 'empty'}, 'no data');\n"
    "      return;\n"
    "    }\n"
    "    var tmax = pts[pts.length - 1].t || 1;\n"
    "    var top = 0;\n"
    "    lines.forEach(function (ln) {\n"
    "      pts.forEach(function (p) { top = Math.max(top, ln.get(p)); });\n"
    "    });\n"
    "    top = nice(top);\n"
    "    function x(t) { return L + t / tmax * (W - L - R); }\n"
    "    function y(v) { return T + (1 - v / top) * (H - T - B); }\n"
    "    for (var g = 0; g <= 4; g++) {\n"
    "      var gv = top * g / 4;\n"
    "      add(svg, 'line', {x1: L, x2: W - R, y1: y(gv), y2: y(gv),\n"
    "                        'class': 'grid'});\n"
    "      add(svg, 'text', {x: L - 6, y: y(gv) + 4, 'text-anchor': 'end'},\n"
    "          fmt(gv));\n"
    "    }\n"
    "    var step = nice(tmax / 6);\n"
    "    for (var t = 0; t <= tmax + 1e-9; t += step) {\n"
    "      add(svg, 'text', {x: x(t), y: H - 8, 'text-anchor': 'middle'},\n"
    "          fmtT(Math.round(t * 10) / 10));\n"
    "    }\n"
    "    lines.forEach(function (ln, i) {\n"
    "      var d = pts.map(function (p, j) {\n"
    "        return (j ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' +\n"
    "          y(ln.get(p)).toFixed(1);\n"
    "      }).join('');\n"
    "      add(svg, 'path', {d: d, 'class': 'line c' + i,\n"
    "                        'data-series': ln.name, 'data-points': "
    "pts.length});\n"
    "      if (pts.length < 3) {\n"
    "        pts.forEach(function (p) {\n"
    "          add(svg, 'circle', {cx: x(p.t), cy: y(ln.get(p)), r: 3,\n"
    "                              'class': 'dot c' + i});\n"
    "        });\n"
    "      }\n"
    "    });\n"
    "    var cursor = add(svg, 'line', {y1: T, y2: H - B, 'class': 'cursor',\n"
    "                                   visibility: 'hidden'});\n"
    "    var tip = fig.querySelector('.tip');\n"
    "    svg.addEventListener('mousemove', function (ev) {\n"
    "      var box = svg.getBoundingClientRect();\n"
    "      var t = (ev.clientX - box.left) / box.width * W;\n"
    "      t = (t - L) / (W - L - R) * tmax;\n"
    "      var best = 0;\n"
    "      pts.forEach(function (p, j) {\n"
    "        if (Math.abs(p.t - t) < Math.abs(pts[best].t - t)) { best = j; }\n"
    "      });\n"
    "      var p = pts[best];\n"
    "      cursor.setAttribute('x1', x(p.t));\n"
    "      cursor.setAttribute('x2', x(p.t));\n"
    "      cursor.setAttribute('visibility', 'visible');\n"
    "      tip.textContent = '';\n"
    "      var head = document.createElement('b');\n"
    "      head.textContent = fmtT(p.t);\n"
    "      tip.appendChild(head);\n"
    "      lines.forEach(function (ln) {\n"
    "        var row = document.createElement('div');\n"
    "        row.textContent = ln.name + ': ' + fmt(ln.get(p));\n"
    "        tip.appendChild(row);\n"
    "      });\n"
    "      tip.style.left = Math.min(ev.clientX - box.left + 14,\n"
    "                                box.width - 140) + 'px';\n"
    "      tip.style.top = (ev.clientY - box.top + 10) + 'px';\n"
    "      tip.hidden = false;\n"
    "    });\n"
    "    svg.addEventListener('mouseleave', function () {\n"
    "      cursor.setAttribute('visibility', 'hidden');\n"
    "      tip.hidden = true;\n"
    "    });\n"
    "  }\n"
    "\n"
    "  function perS(v) { return fmtNum(v) + '/s'; }\n"
    "  var anyDropped = pts.some(function (p) { return p.dropped > 0; });\n"
    "  var charts = {\n"
    "    rps: [[{name: 'requests/s', get: function (p) { return p.rps; }}], "
    "perS],\n"
    "    latency: [[\n"
    "      {name: 'p50', get: function (p) { return p.p50; }},\n"
    "      {name: 'p95', get: function (p) { return p.p95; }},\n"
    "      {name: 'p99', get: function (p) { return p.p99; }}], fmtMs],\n"
    "    errors: [[{name: 'failed/s', get: function (p) { return p.failed; "
    "}}]\n"
    "      .concat(anyDropped ? [{name: 'dropped iterations/s',\n"
    "                             get: function (p) { return p.dropped; }}] : "
    "[]),\n"
    "      perS],\n"
    "    vus: [[{name: 'VUs', get: function (p) { return p.vus; }}], fmtNum]\n"
    "  };\n"
    "  Object.keys(charts).forEach(function (k) {\n"
    "    var fig = document.getElementById('chart-' + k);\n"
    "    draw(fig, charts[k][0], charts[k][1]);\n"
    "    fig.setAttribute('data-drawn', 'true');\n"
    "  });\n"
    "  document.body.setAttribute('data-ready', 'true');\n"
    "}());\n";

/* Writes v as JSON safe inside <script>: jsonw_string escapes < > & and
 * U+2028/2029, so neither "</script>" nor "<!--" can appear. */
static void embed(struct buf *b, const json_t *v, int depth)
{
    const char *key;
    json_t *item;
    size_t i;
    bool first = true;

    if (depth > EMBED_MAX_DEPTH) {
        buf_adds(b, "null");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        buf_addc(b, '{');
        json_object_foreach((json_t *)v, key, item)
        {
            buf_adds(b, first ? "" : ",");
            first = false;
            jsonw_string(b, key, strlen(key));
            buf_addc(b, ':');
            embed(b, item, depth + 1);
        }
        buf_addc(b, '}');
        break;
    case JSON_ARRAY:
        buf_addc(b, '[');
        json_array_foreach(v, i, item)
        {
            buf_adds(b, i ? "," : "");
            embed(b, item, depth + 1);
        }
        buf_addc(b, ']');
        break;
    case JSON_STRING:
        jsonw_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        jsonw_float64(b, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_adds(b, "true");
        break;
    case JSON_FALSE:
        buf_adds(b, "false");
        break;
    case JSON_NULL:
    default:
        buf_adds(b, "null");
        break;
    }
}

static void text(struct buf *b, const char *s)
{
    xmlw_text(b, s);
}

static void ms_cell(struct buf *b, double ms)
{
    char v[32];

    loadreport_fmt_ms(v, sizeof(v), ms);
    buf_addf(b, "<td>%s</td>", v);
}

static void pct_cell(struct buf *b, uint64_t part, uint64_t whole, bool bad)
{
    char v[32];

    loadreport_fmt_pct(v, sizeof(v), whole ? (double)part / (double)whole : 0);
    buf_addf(b, "<td%s>%s</td>", bad && part ? " class=\"bad\"" : "", v);
}

static void card(struct buf *b, const char *value, const char *label,
                 const char *cls)
{
    buf_addf(b, "<div class=\"card\"><b%s%s%s>%s</b><span>%s</span></div>\n",
             cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "", value,
             label);
}

static void header(struct buf *b, const struct loadreport *r)
{
    const struct loadreport_executor *e = &r->executor;
    bool ok = strcmp(r->result, "passed") == 0;
    char parts[LOADREPORT_EXECUTOR_PARTS][LOADREPORT_PART_MAX];
    size_t n;
    char v[32];

    buf_adds(b, "<header>\n<h1>");
    text(b, r->suite);
    buf_adds(b, *r->suite ? " / " : "");
    text(b, r->workflow);
    buf_addf(b, "</h1><span class=\"badge %s\" id=\"result\">%s</span>\n",
             ok ? "ok" : "bad", r->result);
    buf_adds(b, "<dl class=\"meta\">\n<dt>test id</dt><dd>");
    text(b, r->id);
    buf_adds(b, "</dd>\n<dt>started</dt><dd>");
    text(b, r->started_at);
    if (*r->ended_at) {
        buf_adds(b, " — ended ");
        text(b, r->ended_at);
    }
    loadreport_fmt_ms(v, sizeof(v), r->duration_ms);
    buf_addf(b, "</dd>\n<dt>total time</dt><dd>%s</dd>\n", v);
    buf_adds(b, "<dt>executor</dt><dd>");
    n = loadreport_executor_parts(e, parts);
    for (size_t i = 0; i < n; i++) {
        buf_adds(b, i ? ", " : "");
        text(b, parts[i]);
    }
    buf_adds(b, "</dd>\n");
    if (r->shards > 1) {
        buf_addf(b, "<dt>shards</dt><dd>%llu</dd>\n",
                 (unsigned long long)r->shards);
    }
    buf_adds(b, "</dl>\n</header>\n");
    if (*r->abort_reason) {
        buf_addf(b, "<div class=\"warn\" id=\"abort\">Run %s: ", r->result);
        text(b, r->abort_reason);
        buf_adds(b, "</div>\n");
    }
    if (r->dropped) {
        buf_addf(b,
                 "<div class=\"warn\" id=\"dropped\">%llu iterations were "
                 "dropped: no VU was free to start them. Latencies may be "
                 "under-reported: raise max VUs until nothing is "
                 "dropped.</div>\n",
                 (unsigned long long)r->dropped);
    }
}

static void cards(struct buf *b, const struct loadreport *r)
{
    const struct loadreport_request *q = &r->totals;
    uint64_t passes = 0;
    uint64_t checks = 0;
    uint64_t failed_it = r->interrupted + r->dropped;
    char v[64];

    for (size_t i = 0; i < r->n_checks; i++) {
        passes += r->checks[i].passes;
        checks += r->checks[i].passes + r->checks[i].fails;
    }
    buf_adds(b, "<section class=\"cards\">\n");
    snprintf(v, sizeof(v), "%llu", (unsigned long long)r->completed);
    card(b, v, "iterations completed", NULL);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)failed_it);
    card(b, v, "iterations interrupted or dropped", failed_it ? "bad" : NULL);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)q->count);
    card(b, v, "requests", NULL);
    snprintf(v, sizeof(v), "%.1f/s", q->rate);
    card(b, v, "request rate", NULL);
    loadreport_fmt_pct(v, sizeof(v),
                       q->count ? (double)q->failed / (double)q->count : 0);
    card(b, v, "requests failed", q->failed ? "bad" : NULL);
    loadreport_fmt_ms(v, sizeof(v), q->timings[LOADREPORT_LATENCY].p95);
    card(b, v, "p95 latency", NULL);
    loadreport_fmt_ms(v, sizeof(v), q->timings[LOADREPORT_LATENCY].p99);
    card(b, v, "p99 latency", NULL);
    if (checks) {
        loadreport_fmt_pct(v, sizeof(v), (double)passes / (double)checks);
        card(b, v, "checks passed", passes < checks ? "bad" : NULL);
    }
    if (r->vus_max) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)r->vus_max);
        card(b, v, "VUs at most", NULL);
    }
    buf_adds(b, "</section>\n");
}

static void charts(struct buf *b)
{
    static const char *const ids[][2] = {
        {"rps", "Requests per second"},
        {"latency", "Latency percentiles (http_req_latency)"},
        {"errors", "Errors (failed requests per second)"},
        {"vus", "Virtual users"},
    };

    buf_adds(b, "<h2>Over time</h2>\n<section class=\"charts\">\n");
    for (size_t i = 0; i < sizeof(ids) / sizeof(*ids); i++) {
        buf_addf(b,
                 "<figure id=\"chart-%s\"><figcaption>%s</figcaption>"
                 "<div class=\"legend\"></div><svg role=\"img\" "
                 "aria-label=\"%s\"></svg><div class=\"tip\" hidden>"
                 "</div></figure>\n",
                 ids[i][0], ids[i][1], ids[i][1]);
    }
    buf_adds(b, "</section>\n");
}

static void thresholds(struct buf *b, const struct loadreport *r)
{
    char v[64];

    if (r->n_thresholds == 0) {
        return;
    }
    buf_adds(b, "<h2>Thresholds</h2>\n<div class=\"wrap\"><table "
                "id=\"thresholds\">\n<tr><th></th><th class=\"l\">threshold"
                "</th><th>observed</th><th>abort on fail</th></tr>\n");
    for (size_t i = 0; i < r->n_thresholds; i++) {
        const struct loadreport_threshold *th = &r->thresholds[i];

        buf_addf(b, "<tr><td class=\"%s\">%s</td><td class=\"l\">",
                 th->passed ? "ok" : "bad", th->passed ? "✓" : "✗");
        text(b, th->source);
        loadreport_fmt_observed(v, sizeof(v), th);
        buf_addf(b, "</td><td>%s</td><td>%s</td></tr>\n", v,
                 th->abort_on_fail ? "yes" : "");
    }
    buf_adds(b, "</table></div>\n");
}

static void checks(struct buf *b, const struct loadreport *r)
{
    if (r->n_checks == 0) {
        return;
    }
    buf_adds(b, "<h2>Checks</h2>\n<div class=\"wrap\"><table id=\"checks\">\n"
                "<tr><th></th><th class=\"l\">check</th><th>passed</th>"
                "<th>passes</th><th>fails</th></tr>\n");
    for (size_t i = 0; i < r->n_checks; i++) {
        const struct loadreport_check *c = &r->checks[i];

        buf_addf(b, "<tr><td class=\"%s\">%s</td><td class=\"l\">",
                 c->fails ? "bad" : "ok", c->fails ? "✗" : "✓");
        text(b, c->name);
        buf_adds(b, "</td>");
        pct_cell(b, c->passes, c->passes + c->fails, false);
        buf_addf(b, "<td>%llu</td><td%s>%llu</td></tr>\n",
                 (unsigned long long)c->passes,
                 c->fails ? " class=\"bad\"" : "",
                 (unsigned long long)c->fails);
    }
    buf_adds(b, "</table></div>\n");
}

static void status_cell(struct buf *b, const struct loadreport_request *q)
{
    buf_adds(b, "<td class=\"l\">");
    for (size_t i = 0; i < q->n_status; i++) {
        const struct loadreport_count *c = &q->status[i];
        bool bad = c->key[0] != '2' && c->key[0] != '3';

        buf_addf(b, "%s<span%s>%s&#xD7;%llu</span>", i ? " " : "",
                 bad ? " class=\"bad\"" : "",
                 strcmp(c->key, "0") == 0 ? "no response" : c->key,
                 (unsigned long long)c->n);
    }
    for (size_t i = 0; i < q->n_errors; i++) {
        buf_adds(b, " <span class=\"bad\">");
        text(b, q->errors[i].key);
        buf_addf(b, "&#xD7;%llu</span>", (unsigned long long)q->errors[i].n);
    }
    buf_adds(b, "</td>");
}

static void request_row(struct buf *b, const struct loadreport_request *q,
                        enum loadreport_timing tm, bool total)
{
    const struct loadreport_stats *s = &q->timings[tm];

    buf_adds(b, total ? "<tr class=\"total\"><td class=\"l\">"
                      : "<tr><td "
                        "class=\"l\">");
    text(b, total ? "" : q->step);
    buf_adds(b, "</td><td class=\"l\">");
    text(b, total ? "all requests" : q->name);
    buf_addf(b, "</td><td>%llu</td><td>%.1f/s</td>",
             (unsigned long long)q->count, q->rate);
    pct_cell(b, q->failed, q->count, true);
    ms_cell(b, s->p50);
    ms_cell(b, s->p90);
    ms_cell(b, s->p95);
    ms_cell(b, s->p99);
    ms_cell(b, s->p99_9);
    ms_cell(b, s->max);
    status_cell(b, q);
    buf_adds(b, "</tr>\n");
}

static void requests_table(struct buf *b, const struct loadreport *r,
                           enum loadreport_timing tm, const char *id)
{
    buf_addf(b,
             "<div class=\"wrap\"><table id=\"%s\">\n<tr><th class=\"l\">"
             "step</th><th class=\"l\">request</th><th>count</th>"
             "<th>rate</th><th>failed</th><th>p50</th><th>p90</th>"
             "<th>p95</th><th>p99</th><th>p99.9</th><th>max</th>"
             "<th class=\"l\">status</th></tr>\n",
             id);
    for (size_t i = 0; i < r->n_requests; i++) {
        request_row(b, &r->requests[i], tm, false);
    }
    request_row(b, &r->totals, tm, true);
    buf_adds(b, "</table></div>\n");
}

static void requests(struct buf *b, const struct loadreport *r)
{
    buf_adds(b, "<h2>Requests</h2>\n<p>Latency (http_req_latency): from "
                "the request's intended start to its end.</p>\n");
    requests_table(b, r, LOADREPORT_LATENCY, "requests");
    buf_adds(b, "<details><summary>Service time (http_req_duration: "
                "sending, waiting, receiving)</summary>\n");
    requests_table(b, r, LOADREPORT_DURATION, "requests-duration");
    buf_adds(b, "</details>\n");
}

static void stats_cells(struct buf *b, const struct loadreport_stats *s)
{
    buf_addf(b, "<td>%llu</td>", (unsigned long long)s->count);
    ms_cell(b, s->min);
    ms_cell(b, s->mean);
    ms_cell(b, s->p50);
    ms_cell(b, s->p90);
    ms_cell(b, s->p95);
    ms_cell(b, s->p99);
    ms_cell(b, s->max);
}

static const char stats_head[] = "<th>count</th><th>min</th><th>avg</th>"
                                 "<th>p50</th><th>p90</th><th>p95</th>"
                                 "<th>p99</th><th>max</th></tr>\n";

static void durations(struct buf *b, const struct loadreport *r)
{
    const struct loadreport_request *q = &r->totals;

    buf_addf(b,
             "<h2>Durations</h2>\n<div class=\"wrap\"><table "
             "id=\"durations\">\n<tr><th class=\"l\"></th>%s",
             stats_head);
    buf_adds(b, "<tr><td class=\"l\">iteration</td>");
    stats_cells(b, &r->iteration_duration);
    buf_adds(b, "</tr>\n");
    for (size_t i = 0; i < r->n_steps; i++) {
        buf_adds(b, "<tr><td class=\"l\">step ");
        text(b, r->steps[i].name);
        buf_adds(b, "</td>");
        stats_cells(b, &r->steps[i].duration);
        buf_adds(b, "</tr>\n");
    }
    for (int t = 0; t < LOADREPORT_TIMING_COUNT; t++) {
        if (!q->has_timing[t] || q->timings[t].count == 0) {
            continue;
        }
        buf_addf(b, "<tr><td class=\"l\">%s</td>", loadreport_timing_name(t));
        stats_cells(b, &q->timings[t]);
        buf_adds(b, "</tr>\n");
    }
    buf_adds(b, "</table></div>\n");
}

static void bucket_table(struct buf *b, const struct loadreport_request *q)
{
    uint64_t max = 0;
    uint64_t total = 0;
    char lo[32];
    char hi[32];

    for (size_t i = 0; i < q->n_buckets; i++) {
        max = q->buckets[i].count > max ? q->buckets[i].count : max;
        total += q->buckets[i].count;
    }
    buf_adds(b, "<div class=\"wrap\"><table class=\"buckets\">\n<tr><th>"
                "from</th><th>to</th><th>count</th><th>share</th>"
                "<th class=\"l\"></th></tr>\n");
    for (size_t i = 0; i < q->n_buckets; i++) {
        const struct loadreport_bucket *k = &q->buckets[i];

        loadreport_fmt_ms(lo, sizeof(lo), k->low_ms);
        loadreport_fmt_ms(hi, sizeof(hi), k->high_ms);
        buf_addf(b, "<tr><td>%s</td><td>%s</td><td>%llu</td>", lo, hi,
                 (unsigned long long)k->count);
        pct_cell(b, k->count, total, false);
        buf_addf(b,
                 "<td class=\"l barcell\"><div class=\"bar\" "
                 "style=\"width:%.1f%%\"></div></td></tr>\n",
                 max ? 100.0 * (double)k->count / (double)max : 0);
    }
    buf_adds(b, "</table></div>\n");
}

static void distribution(struct buf *b, const struct loadreport *r)
{
    buf_adds(b, "<h2>Latency distribution</h2>\n<section "
                "id=\"distribution\">\n");
    for (size_t i = 0; i <= r->n_requests; i++) {
        const struct loadreport_request *q =
            i < r->n_requests ? &r->requests[i] : &r->totals;

        if (q->n_buckets == 0) {
            continue;
        }
        buf_addf(b, "<details%s><summary>", i == r->n_requests ? " open" : "");
        if (i == r->n_requests) {
            buf_adds(b, "all requests");
        } else {
            if (*q->step) {
                text(b, q->step);
                buf_adds(b, " · ");
            }
            text(b, q->name);
        }
        buf_addf(b, " (%llu)</summary>\n", (unsigned long long)q->count);
        bucket_table(b, q);
        buf_adds(b, "</details>\n");
    }
    buf_adds(b, "</section>\n");
}

int loadreport_html(const struct json_t *report, struct buf *out, char *err,
                    size_t errlen)
{
    struct loadreport *r = NULL;
    int rc = loadreport_parse(report, &r, err, errlen);

    if (rc != ST_OK) {
        return rc;
    }
    if (!out) {
        loadreport_free(r);
        return ST_INVALID;
    }
    buf_adds(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                  "<meta charset=\"utf-8\">\n"
                  "<meta http-equiv=\"Content-Security-Policy\" "
                  "content=\"default-src 'none'; style-src 'unsafe-inline'; "
                  "script-src 'unsafe-inline'\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, "
                  "initial-scale=1\">\n<title>");
    text(out, r->suite);
    buf_adds(out, *r->suite ? "/" : "");
    text(out, r->workflow);
    buf_addf(out,
             " — load run %s</title>\n<style>\n%s</style>\n</head>\n"
             "<body>\n<main>\n",
             r->result, page_css);
    header(out, r);
    cards(out, r);
    charts(out);
    thresholds(out, r);
    checks(out, r);
    requests(out, r);
    durations(out, r);
    distribution(out, r);
    buf_adds(out, "<footer>Handoff load report (" LOADREPORT_SCHEMA
                  "). The report document is embedded in this page as "
                  "<code>#report-data</code>.</footer>\n</main>\n"
                  "<script type=\"application/json\" id=\"report-data\">");
    embed(out, report, 0);
    buf_addf(out, "</script>\n<script>\n%s</script>\n</body>\n</html>\n",
             page_js);
    loadreport_free(r);
    return ST_OK;
}
