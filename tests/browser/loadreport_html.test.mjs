// The HTML load report in real headless Chromium, opened from disk as a
// user opens a CI artifact: the page must run without errors, draw its four
// charts from the embedded report (one path per series, one point per
// second), list every request in its tables with names shown as text (not
// markup), and fetch nothing: every request other than the page itself is
// recorded and aborted.
//
// Usage: node loadreport_html.test.mjs HANDOFF_LOADREPORT_BIN
// (tests/browser/run.sh installs playwright-core and sets HANDOFF_CHROMIUM).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const tool = process.argv[2];
if (!tool) {
  console.error('usage: loadreport_html.test.mjs HANDOFF_LOADREPORT_BIN');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '..', 'data', 'load');
const tmp = mkdtempSync(join(tmpdir(), 'handoff-browser-'));

// As the page shows a name: control characters XML cannot carry are
// written as \xNN.
function shown(s) {
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g,
                   (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

// Each case: a report document, and the series each chart must show.
function fixture(name) {
  return JSON.parse(readFileSync(join(fixtures, name), 'utf8'));
}
const noSeries = fixture('passed.json');
noSeries.series = [];
const cases = [
  { name: 'passed', doc: fixture('passed.json'),
    lines: { rps: 1, latency: 3, errors: 1, vus: 1 } },
  { name: 'failed', doc: fixture('failed.json'),
    lines: { rps: 1, latency: 3, errors: 1, vus: 1 } },
  // Dropped iterations add a second line to the errors chart.
  { name: 'dropped', doc: fixture('dropped.json'),
    lines: { rps: 1, latency: 3, errors: 2, vus: 1 } },
  { name: 'hostile', doc: fixture('hostile.json'),
    lines: { rps: 1, latency: 3, errors: 1, vus: 1 } },
  { name: 'no-series', doc: noSeries, lines: { rps: 0, latency: 0,
                                               errors: 0, vus: 0 } },
];

let failures = 0;
const browser = await chromium.launch({
  executablePath: process.env.HANDOFF_CHROMIUM || '/usr/bin/chromium',
  headless: true,
});

async function check(c) {
  const json = join(tmp, c.name + '.json');
  const html = join(tmp, c.name + '.html');
  writeFileSync(json, JSON.stringify(c.doc));
  writeFileSync(html, execFileSync(tool, ['html', json]));
  const url = pathToFileURL(html).href;

  const context = await browser.newContext({ viewport: { width: 1280,
                                                         height: 900 } });
  const page = await context.newPage();
  const problems = [];
  const fetched = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      problems.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    d.dismiss();
  });
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url) {
      return route.continue();
    }
    fetched.push(u);
    return route.abort();
  });

  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 5000 });

  // Charts: one path per series with one point per second of the run.
  const points = c.doc.series.length;
  for (const [chart, lines] of Object.entries(c.lines)) {
    const fig = page.locator(`#chart-${chart}`);
    assert.equal(await fig.getAttribute('data-drawn'), 'true', chart);
    const paths = await fig.locator('svg path.line').evaluateAll((ps) =>
      ps.map((p) => ({
        d: p.getAttribute('d'),
        n: Number(p.getAttribute('data-points')),
        w: p.getBBox().width,
      })));
    assert.equal(paths.length, lines, `${chart}: series drawn`);
    for (const p of paths) {
      assert.equal(p.n, points, `${chart}: points`);
      assert.equal((p.d.match(/[ML]/g) || []).length, points,
                   `${chart}: path commands`);
      assert.ok(p.w > 100, `${chart}: path spans the chart (${p.w})`);
    }
    const legend = await fig.locator('.legend span').count();
    assert.ok(legend >= lines, `${chart}: legend`);
    if (points === 0) {
      assert.equal(await fig.locator('svg text.empty').textContent(),
                   'no data');
    } else {
      // Axis labels were drawn too.
      assert.ok(await fig.locator('svg text').count() >= 5, chart);
    }
  }

  // Hovering a chart shows the values of the nearest second.
  if (points > 0) {
    const box = await page.locator('#chart-latency svg').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const tip = page.locator('#chart-latency .tip');
    await tip.waitFor({ state: 'visible', timeout: 2000 });
    const text = await tip.textContent();
    assert.match(text, /p50: .*p95: .*p99: /, 'tooltip');
  }

  // Tables: every request, check and threshold, names as plain text.
  const names = await page.locator('#requests tr td:nth-child(2)')
    .allTextContents();
  for (const r of c.doc.requests) {
    assert.ok(names.includes(shown(r.name)), `request ${r.name}`);
  }
  assert.ok(names.includes('all requests'));
  const steps = await page.locator('#requests tr td:nth-child(1)')
    .allTextContents();
  for (const r of c.doc.requests) {
    assert.ok(steps.includes(shown(r.step)), `step ${r.step}`);
  }
  if (c.doc.checks.length) {
    const checks = await page.locator('#checks tr td:nth-child(2)')
      .allTextContents();
    assert.deepEqual(checks, c.doc.checks.map((x) => shown(x.name)));
  }
  if (c.doc.thresholds.length) {
    const ths = await page.locator('#thresholds tr td:nth-child(2)')
      .allTextContents();
    assert.deepEqual(ths, c.doc.thresholds.map((x) => shown(x.source)));
  }
  assert.equal(await page.locator('#distribution details').count(),
               c.doc.requests.filter((r) => r.buckets.length).length + 1);

  // The embedded report is the document, and no name became markup.
  const embedded = await page.evaluate(() =>
    JSON.parse(document.getElementById('report-data').textContent));
  assert.deepEqual(embedded, c.doc);
  assert.equal(await page.locator('script').count(), 2);
  const injected = await page.locator('main b').evaluateAll((bs) =>
    bs.filter((b) => !b.closest('.card') && !b.closest('.tip')).length);
  assert.equal(injected, 0, 'markup from a name');
  assert.equal(await page.title(),
               `${c.doc.suite}/${c.doc.workflow} — load run ${c.doc.result}`);

  if (process.env.HANDOFF_BROWSER_SHOTS) {
    await page.screenshot({ fullPage: true,
      path: join(process.env.HANDOFF_BROWSER_SHOTS, c.name + '.png') });
  }
  assert.deepEqual(fetched, [], 'fetched from the network');
  assert.deepEqual(problems, [], 'console');
  await context.close();
}

for (const c of cases) {
  try {
    await check(c);
    console.log(`ok   ${c.name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${c.name}: ${e.message}`);
  }
}
await browser.close();
rmSync(tmp, { recursive: true, force: true });
console.log(`${cases.length - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
