// A benchmark, not a test (BENCHMARKS.md, "The web app"): how long the patient's Records
// page takes to render in headless Chromium with about 1,000 records across three
// providers. Run: `node e2e/bench-timeline.mjs` (MEDREC_BIN picks the binary; build it
// with --release for figures to report). It starts `medrec demo --keep-running --years 20`,
// imports five more synthetic histories' lab results for Lakeside Practice's patient
// through the provider's app, enrolls the patient there, accepts every relationship in
// the patient's app, refreshes, then loads Records (and Records filtered to lab results,
// with its charts) several times, printing one JSON object with the timings.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flash, launch, until } from './lib/browser.mjs';
import { startDemo } from './lib/demo.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.MEDREC_BIN ?? join(ROOT, 'target', 'debug', 'medrec');
const OUT = join(ROOT, 'target', 'e2e-bench');
const ROUNDS = 7;

/** Lab results of `n` more synthetic histories, as the patient `patientId`'s. */
function extraLabs(patientId, n) {
  const bundles = JSON.parse(execFileSync(BIN, ['synth', '--patients', String(n), '--years', '20', '--seed', '21'], { maxBuffer: 1 << 28 }));
  const entry = [];
  for (const b of bundles) {
    for (const e of b.entry) {
      const r = e.resource;
      if (r.resourceType !== 'Observation' || r.category?.[0]?.coding?.[0]?.code !== 'laboratory') continue;
      const copy = { ...r, id: `bench-${r.id}`, subject: { reference: `Patient/${patientId}` } };
      delete copy.encounter;
      entry.push({ resource: copy, request: { method: 'PUT', url: `Observation/${copy.id}` } });
    }
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

/** Navigation start → load event of the page just loaded, in ms. */
const loadMs = (page) =>
  page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return Math.round(n.loadEventEnd - n.startTime);
  });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

mkdirSync(OUT, { recursive: true });
const demo = await startDemo(BIN, join(OUT, 'demo.log'), 20);
const browser = await launch();
try {
  const info = demo.info;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const provider = await context.newPage();
  await provider.goto(info.apps.provider);
  const base = new URL(info.apps.provider).origin;
  // The import goes through the provider's app as a provider's staff would send it.
  const bundle = extraLabs(info.lakeside.patient_id, 5);
  const imported = await provider.request.post(`${base}/import`, {
    form: { bundle: JSON.stringify(bundle) },
    headers: { origin: base },
  });
  if (!imported.ok()) throw new Error(`the import failed: ${imported.status()}`);
  await provider.goto(`${base}/`);
  await provider.getByLabel("Patient's address").fill(info.patient.address);
  await provider.getByLabel('Patient id in your records (FHIR Patient id)').fill(info.lakeside.patient_id);
  await provider.getByRole('button', { name: 'Enroll', exact: true }).click();
  const enrolled = await flash(provider);
  if (!enrolled.startsWith('Enrolled')) throw new Error(enrolled);

  const patient = await context.newPage();
  await patient.goto(info.apps.patient);
  const app = new URL(info.apps.patient).origin;
  await until('every relationship is accepted', async () => {
    await patient.goto(`${app}/inbox`);
    const accept = patient.locator('section[aria-labelledby="waiting-h"]').getByRole('button', { name: 'Accept', exact: true });
    if ((await accept.count()) === 0) return true;
    await accept.first().click();
    await patient.waitForURL(/\/inbox/);
    return false;
  }, 120_000);
  await patient.goto(`${app}/records`);
  // Accepting started a refresh; wait until the page says every record was checked.
  await until('the records are fetched and checked', async () => {
    await patient.goto(`${app}/records`);
    const state = await patient.locator('#records-state').innerText();
    return /Last checked against the chain/.test(state) && !(await patient.locator('#records-state[data-refreshing]').count());
  }, 300_000, 2_000);
  const refreshed = await patient.locator('#records-state').innerText();
  // What went wrong with a provider at the refresh (a refusal such as a 429 shows here).
  const problems = await patient.locator('main p.flash.note, main p.mismatch').allInnerTexts();

  const timings = {};
  for (const [name, path] of [['records', '/records'], ['labs_with_charts', '/records?category=labs']]) {
    const ms = [];
    let count = 0;
    for (let i = 0; i < ROUNDS; i += 1) {
      await patient.goto(`${app}${path}`);
      ms.push(await loadMs(patient));
      count = await patient.locator('li.record').count();
    }
    timings[name] = { records: count, charts: await patient.locator('figure.chart').count(), load_ms: ms, median_ms: median(ms) };
  }
  const providers = new Set((await patient.locator('li.record .record-meta').allInnerTexts()).map((t) => t.split(' · ')[0]));
  console.log(JSON.stringify({ binary: BIN, refreshed, problems, providers: providers.size, ...timings }, null, 2));
} finally {
  await browser.close();
  await demo.stop();
}
