// What the story needs to know about the demo it runs against, from its JSON.

/** `127.0.0.1:34537` from `http://127.0.0.1:34537`. */
export function host(url) {
  return new URL(url).host;
}

/** The origin of an app's link (its key stays in the cookie the link sets). */
export function origin(url) {
  return new URL(url).origin;
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A provider as the app names it: by its name (`Riverside Clinic`), or, while the chain
 * knows no names, `Provider 0x7099…79C8 (127.0.0.1:34537)` (the address shortened and
 * checksummed, so matched without regard to case).
 */
export function providerPattern(provider) {
  const a = provider.address;
  const short = `${a.slice(0, 6)}…${a.slice(-4)}`;
  const byAddress = `Provider ${short} \\(${escape(host(provider.gatekeeper_url))}\\)`;
  return new RegExp(`${escape(provider.name)}|${byAddress}`, 'i');
}

/** `2026-12-04` for the day `days` after today, in UTC. */
export function day(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  return d.toISOString().slice(0, 10);
}

/** Reads the demo's JSON into what the story uses, failing plainly when a field is missing. */
export function parties(info) {
  const need = (cond, what) => {
    if (!cond) throw new Error(`the demo's JSON lacks ${what}`);
  };
  need(info.apps?.patient && info.apps?.viewer, 'apps.patient and apps.viewer');
  need(info.viewer?.address, 'viewer.address');
  need(info.providers?.length >= 2, 'two providers');
  need(info.relationships?.length >= 2, 'two relationships');
  const byAddress = (a) => info.providers.find((p) => p.address.toLowerCase() === a.toLowerCase());
  const [first, second] = info.relationships;
  need(second.status === 'update pending', "the second relationship 'update pending'");
  return {
    patientUrl: info.apps.patient,
    viewerUrl: info.apps.viewer,
    patient: origin(info.apps.patient),
    viewerApp: origin(info.apps.viewer),
    viewer: info.viewer.address,
    // The story's first relationship (accepted, shared with the viewer, then revoked)
    // and the second (an update waits in the Inbox).
    first: { id: first.id, provider: byAddress(first.provider) },
    second: { id: second.id, provider: byAddress(second.provider) },
    // The other parties' apps, and the provider set up for real (Lakeside Practice),
    // which enrolls the patient from its app.
    patientAddress: info.patient?.address,
    providerUrl: info.apps.provider,
    researcherUrl: info.apps.researcher,
    lakeside: info.lakeside,
    // The ER clinician who broke the glass in the story, and its (viewer-role) app.
    clinicianUrl: info.apps.clinician,
    breakGlass: info.break_glass,
    // The patient's spouse, a custodian, shared one relationship with the family doctor
    // (the grant names the spouse's key).
    custodianGrant: info.custodian?.granted,
  };
}
