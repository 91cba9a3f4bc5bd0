//! Keys for MedRec (issue 5): BIP-39 recovery phrases, encrypted Ethereum v3 keystore files,
//! and HD derivation of one delegate address per provider relationship.
//!
//! # Derivation paths
//!
//! | key | path |
//! | --- | --- |
//! | the participant's own account | `m/44'/60'/0'/0/0` (the standard first Ethereum address) |
//! | provider delegate for relationship `i` | `m/44'/60'/1'/0/i'` (hardened, `i` < 2^31) |
//!
//! A provider that recovers its phrase re-derives every delegate;
//! [`Wallet::find_delegate`] tells which relationship index an address belongs to. See
//! [`hd`] for why these paths.
//!
//! # A wallet directory
//!
//! ```text
//! <dir>/                 mode 0700 (created so if missing)
//!   wallet.json          public metadata: {"format":"medrec-wallet","version":1,
//!                        "account":"0x…","accountPath":"m/44'/60'/0'/0/0",
//!                        "delegatePath":"m/44'/60'/1'/0/i'"}; readable without a passphrase
//!   mnemonic.json        the recovery phrase: its BIP-39 entropy (16 or 32 bytes) in a v3
//!                        keystore (scrypt, AES-128-CTR, keccak MAC), marked
//!                        "medrec":"bip39-entropy-english", with the account address
//!   account.json         the account key as a standard v3 keystore (geth, Foundry, MetaMask
//!                        import it); same passphrase
//!   keys.json            after a key rotation, which key `m/44'/60'/0'/0/n` acts for the
//!                        account now: {"acting":n} (public; absent: key 0)
//! ```
//!
//! Every file is written with mode 0600, atomically (a temporary file in the same
//! directory, flushed, then renamed); `wallet.json` is written last and marks a complete
//! wallet. Opening decrypts `mnemonic.json` only (one scrypt run) and checks that the three
//! files name the same account. Keystores default to scrypt n = 2^18, r = 8, p = 1 (geth's
//! standard; see [`keystore`] for why).
//!
//! # Secrets
//!
//! Phrases, passphrases, seeds and key bytes are held in memory that is wiped on drop
//! (`zeroize`; private keys in `k256` signing keys, which wipe themselves). No `Debug` or
//! `Display` here shows them, and error messages name positions and addresses, not secrets.
//! [`Mnemonic::phrase`] and [`Passphrase::expose_secret`] hand them out only where a caller
//! asks, e.g. to show a new phrase once.
//!
//! Passphrases come from a no-echo terminal prompt, an environment variable or a file
//! ([`PassphraseSource`]).

pub mod fs;
pub mod hd;
pub mod keystore;
pub mod mnemonic;
pub mod passphrase;
mod wallet;

pub use hd::{HdError, HdKeys};
pub use keystore::{KeystoreError, ScryptParams};
pub use mnemonic::{Mnemonic, MnemonicError, WordCount};
pub use passphrase::{Passphrase, PassphraseError, PassphraseSource};
pub use wallet::{ACCOUNT_FILE, KEYS_FILE, METADATA_FILE, MNEMONIC_FILE, Wallet, WalletError};
