// Drives a MedRec chain with unmodified viem, the way a web app would.
//   node contracts/tools/viem-check.mjs RPC_URL REGISTRAR_ADDRESS
// Prints one JSON object with what it observed; exits 1 on any failure.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createPublicClient, createWalletClient, defineChain, http, keccak256, toHex, BaseError, ContractFunctionRevertedError } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const [url, registrar] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const { abi } = JSON.parse(readFileSync(join(here, "../artifacts/Registrar.json"), "utf8"));
const chain = defineChain({ id: 31337, name: "medrec", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [url] } } });
// Dev accounts 0 (the founding institution) and 3 (no role): public test keys.
const institution = privateKeyToAccount("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const stranger = privateKeyToAccount("0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6");
const pub = createPublicClient({ chain, transport: http(url) });
const wallet = createWalletClient({ chain, transport: http(url), account: institution });

const out = {};
out.chainId = await pub.getChainId();
out.blockNumber = Number(await pub.getBlockNumber());
out.balance = (await pub.getBalance({ address: institution.address })).toString();
const identity = keccak256(toHex("viem patient"));
const hash = await wallet.writeContract({ address: registrar, abi, functionName: "registerPatient", args: [identity, stranger.address] });
const receipt = await pub.waitForTransactionReceipt({ hash });
out.status = receipt.status;
out.logs = receipt.logs.length;
const [account] = await pub.readContract({ address: registrar, abi, functionName: "resolve", args: [identity] });
out.resolved = account;
try {
  await pub.simulateContract({ account: stranger, address: registrar, abi, functionName: "registerPatient", args: [identity, stranger.address] });
  out.revert = null;
} catch (e) {
  const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null;
  out.revert = revert?.data?.errorName ?? String(e);
}
const events = await pub.getContractEvents({ address: registrar, abi, eventName: "IdentityRegistered", fromBlock: 0n });
out.events = events.map((ev) => ev.args.account);
const fees = await pub.estimateFeesPerGas();
out.fees = fees.maxFeePerGas > 0n;
console.log(JSON.stringify(out));
