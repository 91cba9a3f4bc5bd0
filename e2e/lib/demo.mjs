// Starts `medrec demo --keep-running --json` and hands back what it printed: the one JSON
// object on stdout (URLs, identities, relationships, the apps' links). Its narration on
// stderr goes to a log file beside the screenshots, for when a step fails.

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { once } from 'node:events';

/** How long the demo may take to play its story before its JSON line (debug build, loaded CI). */
const START_TIMEOUT_MS = 240_000;

/**
 * Runs the demo binary and waits for its JSON line.
 * @param {string} bin path to the `medrec` binary
 * @param {string} logPath where the demo's stderr (its narration) is written
 * @param {number} years years of synthetic history per provider
 * @param {string[]} extraArgs more `medrec demo` arguments (e.g. `--smart-client ID=URI`)
 * @returns {Promise<{info: object, stop: () => Promise<void>}>}
 */
export async function startDemo(bin, logPath, years = 1, extraArgs = []) {
  if (!existsSync(bin)) {
    throw new Error(
      `the medrec binary is missing at ${bin}: build it first with \`cargo build --locked --bin medrec\` ` +
        '(or set MEDREC_BIN to its path)',
    );
  }
  const child = spawn(bin, ['demo', '--keep-running', '--json', '--years', String(years), ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(logPath);
  child.stderr.pipe(log, { end: false });
  let stopping = false;
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`the demo exited on its own (code ${code}, signal ${signal}); see ${logPath}`);
  });

  const stop = async () => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    log.end();
  };

  const info = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      reject(new Error(`the demo printed no JSON within ${START_TIMEOUT_MS / 1000} s (its narration: ${logPath})`));
    }, START_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.trim().startsWith('{'));
      if (line === undefined || !out.includes('\n')) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line));
      } catch (e) {
        reject(new Error(`the demo's stdout is not one JSON object: ${e.message}`));
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (code ${code}, signal ${signal}) before printing its JSON; see ${logPath}`));
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { info, stop };
}
