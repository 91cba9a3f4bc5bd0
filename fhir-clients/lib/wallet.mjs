// The wallet side, simulated with a development key: Sign-In with Ethereum (EIP-4361)
// at a gatekeeper for a bearer token, and a `window.ethereum` stub (EIP-1193) whose
// `personal_sign` signs here, in the test process, with the same key. The gatekeeper is
// the real one; only the person's wallet is played by the test.

import { getAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage } from 'viem/siwe';

/**
 * Signs in at `gatekeeper` (its origin, e.g. http://127.0.0.1:8080) with `privateKey`:
 * `GET /auth/nonce`, an EIP-4361 message for its domain and `chainId`, signed with
 * EIP-191 `personal_sign`, traded at `POST /auth/siwe` for a bearer token.
 * @returns {Promise<string>} the access token
 */
export async function signIn(gatekeeper, privateKey, chainId) {
  const account = privateKeyToAccount(privateKey);
  const url = new URL(gatekeeper);
  const nonceAnswer = await fetch(new URL('/auth/nonce', url));
  if (!nonceAnswer.ok) throw new Error(`GET /auth/nonce answered ${nonceAnswer.status}: ${await nonceAnswer.text()}`);
  const { nonce } = await nonceAnswer.json();
  const message = createSiweMessage({
    domain: url.host,
    address: getAddress(account.address),
    statement: 'Sign in to the MedRec gatekeeper (FHIR client tests).',
    uri: url.origin,
    version: '1',
    chainId,
    nonce,
    issuedAt: new Date(),
    expirationTime: new Date(Date.now() + 10 * 60_000),
  });
  const signature = await account.signMessage({ message });
  const answer = await fetch(new URL('/auth/siwe', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message, signature }),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok || typeof body.access_token !== 'string') {
    throw new Error(`POST /auth/siwe answered ${answer.status}: ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

/**
 * Gives every page of `context` a `window.ethereum` that holds the account of
 * `privateKey`: `eth_requestAccounts`/`eth_accounts` name it, `personal_sign` signs the
 * (hex) message with it in this process. Returns the messages signed, for assertions.
 * @param {import('playwright-core').BrowserContext} context
 */
export async function injectWallet(context, privateKey) {
  const account = privateKeyToAccount(privateKey);
  const signed = [];
  await context.exposeFunction('__medrecTestWalletSign', async (hex, address) => {
    if (getAddress(address) !== account.address) throw new Error(`this wallet holds ${account.address}, not ${address}`);
    signed.push(Buffer.from(hex.slice(2), 'hex').toString('utf8'));
    return account.signMessage({ message: { raw: hex } });
  });
  await context.addInitScript((address) => {
    window.ethereum = {
      isMedrecTestWallet: true,
      async request({ method, params }) {
        switch (method) {
          case 'eth_requestAccounts':
          case 'eth_accounts':
            return [address];
          case 'personal_sign':
            return window.__medrecTestWalletSign(params[0], params[1]);
          default:
            throw Object.assign(new Error(`the test wallet does not do ${method}`), { code: 4200 });
        }
      },
    };
  }, account.address);
  return { address: account.address, signed };
}
