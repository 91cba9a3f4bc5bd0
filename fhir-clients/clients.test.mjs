// Unmodified FHIR client libraries drive a MedRec gatekeeper (issue 14, part 5):
//
// - fhir-kit-client (npm, JavaScript) and SMART's Python client (PyPI `fhirclient`),
//   each handed a bearer token from Sign-In with Ethereum as its own auth option;
// - SMART's JavaScript client (npm `fhirclient`, its browser build) in headless
//   Chromium: a standalone launch through the gatekeeper's consent page, signed by a
//   simulated wallet (`window.ethereum` with the demo patient's development key), the
//   code traded at /token with PKCE, reads with the token, a refresh.
//
// The gatekeeper is Riverside Clinic's of `medrec demo --keep-running --json`, started
// with the test app registered (`--smart-client`) and its origin allowed (`--cors-origin`).
// Each client reads the CapabilityStatement, the patient, searches Observations with
// parameters and is refused a resource outside consent (an OperationOutcome).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Client } from 'fhir-kit-client';
import { chromium } from 'playwright-core';
import { startDemo } from '../e2e/lib/demo.mjs';
import { injectWallet, signIn } from './lib/wallet.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const BIN = process.env.MEDREC_BIN ?? join(ROOT, 'target/debug/medrec');
const OUT = join(ROOT, 'target/fhir-clients');
const PYTHON = process.env.FHIR_CLIENTS_PYTHON ?? join(HERE, '.venv/bin/python');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CLIENT_ID = 'medrec-test-app';
/** A Patient id of another of Riverside Clinic's patients (the demo's cohort, seed 21). */
const OTHER_PATIENT = 'syn-15-3';

let demo;
let app;
let info;
let gatekeeper;
let base;
let patientToken;
let viewerToken;

/** Polls `check` until it is truthy (errors count as "not yet"). */
async function until(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Serves the test SMART app (smart-app/) and SMART's browser build of fhirclient. */
async function serveApp() {
  const require = createRequire(import.meta.url);
  const bundle = join(dirname(require.resolve('fhirclient/package.json')), 'build/fhir-client.js');
  const files = {
    '/launch.html': [join(HERE, 'smart-app/launch.html'), 'text/html; charset=utf-8'],
    '/callback.html': [join(HERE, 'smart-app/callback.html'), 'text/html; charset=utf-8'],
    '/fhir-client.js': [bundle, 'text/javascript; charset=utf-8'],
  };
  const server = createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(readFileSync(file[0]));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  app = await serveApp();
  demo = await startDemo(BIN, join(OUT, 'demo.log'), 1, [
    '--smart-client',
    `${CLIENT_ID}=${app.origin}/callback.html`,
    '--cors-origin',
    app.origin,
  ]);
  info = demo.info;
  gatekeeper = info.providers[0].gatekeeper_url;
  base = `${gatekeeper}/fhir`;
  patientToken = await signIn(gatekeeper, info.patient.private_key, info.chain_id);
  // The pharmacist: shared with, then revoked, in the demo's story.
  viewerToken = await signIn(gatekeeper, info.viewer.private_key, info.chain_id);
});

after(async () => {
  await demo?.stop();
  app?.server.close();
});

test('fhir-kit-client (npm) reads, searches and is refused with a SIWE bearer token', async () => {
  const client = new Client({ baseUrl: base, bearerToken: patientToken });

  const cap = await client.capabilityStatement();
  assert.equal(cap.resourceType, 'CapabilityStatement');
  assert.equal(cap.fhirVersion, '4.0.1');
  const obs = cap.rest[0].resource.find((r) => r.type === 'Observation');
  assert.ok(obs.interaction.some((i) => i.code === 'search-type'));
  const smart = await client.smartAuthMetadata();
  assert.equal(String(smart.authorizeUrl), `${gatekeeper}/authorize`);
  assert.equal(String(smart.tokenUrl), `${gatekeeper}/token`);

  const patients = await client.search({ resourceType: 'Patient', searchParams: {} });
  assert.equal(patients.type, 'searchset');
  assert.equal(patients.total, 1, 'the patient sees their own Patient alone');
  const id = patients.entry[0].resource.id;
  const patient = await client.read({ resourceType: 'Patient', id });
  assert.equal(patient.id, id);
  assert.ok(patient.birthDate);

  // A search with parameters, its pages followed with the library's nextPage.
  let page = await client.search({
    resourceType: 'Observation',
    searchParams: { patient: id, category: 'laboratory', _count: 4 },
  });
  const total = page.total;
  const seen = [];
  for (;;) {
    seen.push(...(page.entry ?? []).map((e) => e.resource));
    const next = client.nextPage({ bundle: page });
    if (!next) break;
    page = await next;
  }
  assert.ok(total > 4, `more than one page of lab results (${total})`);
  assert.equal(seen.length, total);
  for (const o of seen) {
    assert.equal(o.resourceType, 'Observation');
    assert.equal(o.subject.reference, `Patient/${id}`);
    assert.ok(o.category.some((c) => c.coding.some((k) => k.code === 'laboratory')));
  }
  const code = seen[0].code.coding[0];
  const same = await client.search({
    resourceType: 'Observation',
    searchParams: { code: `${code.system}|${code.code}`, date: 'ge1900-01-01' },
  });
  assert.ok(same.total >= 1);
  assert.ok(same.entry.every((e) => e.resource.code.coding.some((k) => k.code === code.code)));

  // Refusals, as the library reports them: another patient's record, and the pharmacist
  // whose grant the patient revoked.
  await assert.rejects(client.read({ resourceType: 'Patient', id: OTHER_PATIENT }), (e) => {
    assert.equal(e.response.status, 404);
    assert.equal(e.response.data.resourceType, 'OperationOutcome');
    assert.equal(e.response.data.issue[0].code, 'not-found');
    return true;
  });
  const pharmacist = new Client({ baseUrl: base, bearerToken: viewerToken });
  await assert.rejects(pharmacist.search({ resourceType: 'Observation', searchParams: { category: 'laboratory' } }), (e) => {
    assert.equal(e.response.status, 403);
    assert.equal(e.response.data.resourceType, 'OperationOutcome');
    assert.equal(e.response.data.issue[0].code, 'forbidden');
    return true;
  });
});

test('SMART\'s Python client (PyPI fhirclient) reads, searches and is refused with a SIWE bearer token', async () => {
  if (!existsSync(PYTHON)) {
    throw new Error(`no Python at ${PYTHON}: run fhir-clients/run.sh (it makes the venv with the pinned fhirclient)`);
  }
  const child = spawn(PYTHON, [join(HERE, 'fhirclient_py.py')], {
    env: {
      ...process.env,
      FHIR_BASE: base,
      PATIENT_TOKEN: patientToken,
      VIEWER_TOKEN: viewerToken,
      OTHER_PATIENT,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const [code] = await once(child, 'exit');
  console.log(out.trimEnd());
  assert.equal(code, 0, out);
  assert.match(out, /python fhirclient: all checks passed/);
});

test('SMART\'s JavaScript client (npm fhirclient) in Chromium: standalone launch, consent signed with the wallet, PKCE, reads, refresh', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM} (scripts/test installs Debian's chromium)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext();
    const wallet = await injectWallet(context, info.patient.private_key);
    const page = await context.newPage();
    await page.goto(`${app.origin}/launch.html?iss=${encodeURIComponent(base)}`);

    // The gatekeeper's consent page says in words what the app asks for.
    await page.waitForURL((u) => u.href.startsWith(`${gatekeeper}/authorize?`), { timeout: 30_000 });
    const authorize = new URL(page.url());
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorize.searchParams.get('client_id'), CLIENT_ID);
    assert.equal(authorize.searchParams.get('aud'), base);
    const words = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
    assert.match(words, /read and search your laboratory results and vital signs \(Observation\)/);
    await page.screenshot({ path: join(OUT, 'smart-consent.png'), fullPage: true });

    // The person signs with the wallet; the page posts the signed message and the
    // gatekeeper redirects to the app with a code.
    // What the browser saw, for a failure's message (a CSP refusal shows only here).
    const seen = [];
    page.on('console', (m) => seen.push(`console: ${m.text()}`));
    page.on('framenavigated', (f) => f === page.mainFrame() && seen.push(`navigated: ${f.url()}`));
    page.on('requestfailed', (r) => seen.push(`failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    const said = () => `; the browser saw:\n  ${seen.join('\n  ')}`;
    await page.click('#sign');
    await until('the gatekeeper sends the browser back to the app', async () =>
      page.url().startsWith(`${app.origin}/callback.html`),
    ).catch((e) => {
      throw new Error(e.message + said());
    });
    assert.equal(wallet.signed.length, 1);
    assert.match(wallet.signed[0], new RegExp(`Request ID: `));
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
    const r = await page.evaluate(() => window.__result);
    await page.screenshot({ path: join(OUT, 'smart-app.png'), fullPage: true });
    assert.equal(r.error, undefined, `the app failed: ${r.error}${said()}`);

    const t = r.tokenResponse;
    assert.equal(t.token_type, 'Bearer');
    assert.ok(t.refresh_token, 'offline_access gives a refresh token');
    for (const s of ['patient/Observation.rs', 'patient/Patient.rs']) assert.ok(t.scope.split(' ').includes(s), t.scope);
    assert.equal(r.patientId, t.patient);
    assert.equal(r.patient.id, r.patientId);
    assert.ok(r.patient.birthDate);
    assert.ok(r.labs.length > 4, `more than one page of lab results (${r.labs.length})`);
    for (const o of r.labs) {
      assert.equal(o.subject, `Patient/${r.patientId}`);
      assert.ok(o.category.includes('laboratory'));
    }
    assert.deepEqual(r.capability, { resourceType: 'CapabilityStatement', fhirVersion: '4.0.1' });
    assert.equal(r.refusal?.status, 403, JSON.stringify(r.refusal));
    assert.equal(r.refusal.body.resourceType, 'OperationOutcome');
    assert.ok(r.refreshed, 'the refresh gave a new access token');
    assert.equal(r.afterRefresh, r.labs[0].id);

    // Revoking the refresh token (RFC 7009) ends every access token of the authorization.
    const revoked = await fetch(`${gatekeeper}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: t.refresh_token, client_id: CLIENT_ID }),
    });
    assert.equal(revoked.status, 200);
    const after = await fetch(`${base}/Observation/${r.labs[0].id}`, { headers: { authorization: `Bearer ${t.access_token}` } });
    assert.equal(after.status, 401, await after.text());
  } finally {
    await browser.close();
  }
});
