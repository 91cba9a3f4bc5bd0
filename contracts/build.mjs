// Compiles contracts/src/*.sol with the pinned solc (npm package, installed into
// contracts/node_modules) and writes contracts/artifacts/<Name>.json: the ABI and the
// creation and runtime bytecode, which `sol!` in crates/contracts reads.
//
//   node build.mjs          write the artifacts
//   node build.mjs --check  exit 1 if the committed artifacts differ from a fresh build
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, "src");
const outDir = join(here, "artifacts");
const check = process.argv.includes("--check");

// Settings are part of the build: changing them changes the artifacts (and the drift check).
const settings = {
  evmVersion: "london", // no PUSH0 or post-merge opcodes (see DESIGN.md, decision 1)
  viaIR: true,
  optimizer: { enabled: true, runs: 10000 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sources = {};
for (const file of readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: readFileSync(join(srcDir, file), "utf8") };
}

const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
const problems = output.errors ?? [];
for (const p of problems) process.stderr.write(p.formattedMessage + "\n");
if (problems.some((p) => p.severity === "error")) process.exit(1);
if (problems.length > 0) {
  process.stderr.write("solc reported warnings: fix them, the build must be clean\n");
  process.exit(1);
}

mkdirSync(outDir, { recursive: true });
let drift = false;
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (file !== `${name}.sol`) continue; // one artifact per file's main contract
    const artifact = {
      contractName: name,
      sourceName: `contracts/src/${file}`,
      compiler: { version: solc.version(), settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer } },
      abi: c.abi,
      bytecode: { object: "0x" + c.evm.bytecode.object },
      deployedBytecode: { object: "0x" + c.evm.deployedBytecode.object },
    };
    const text = JSON.stringify(artifact, null, 2) + "\n";
    const path = join(outDir, `${name}.json`);
    if (check) {
      const old = existsSync(path) ? readFileSync(path, "utf8") : "";
      if (old !== text) {
        process.stderr.write(`artifact drift: contracts/artifacts/${name}.json differs from a fresh build; run \`node contracts/build.mjs\` and commit\n`);
        drift = true;
      }
    } else {
      writeFileSync(path, text);
      process.stderr.write(`wrote contracts/artifacts/${name}.json (${c.evm.deployedBytecode.object.length / 2} bytes runtime)\n`);
    }
  }
}
process.exit(drift ? 1 : 0);
