//! A MedRec wallet: one recovery phrase, kept encrypted in a directory.
//!
//! See the crate documentation for the directory layout.

use std::fmt;
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::hd::{ACCOUNT_PATH, DELEGATE_PARENT_PATH, HdError, HdKeys};
use crate::keystore::{self, KeystoreError, ScryptParams};
use crate::mnemonic::{Mnemonic, MnemonicError, WordCount};
use crate::passphrase::Passphrase;

/// Public metadata file of a wallet directory.
pub const METADATA_FILE: &str = "wallet.json";
/// The encrypted recovery phrase (its BIP-39 entropy in a v3-style keystore).
pub const MNEMONIC_FILE: &str = "mnemonic.json";
/// The account key as a standard v3 keystore, for other Ethereum tools.
pub const ACCOUNT_FILE: &str = "account.json";
/// Which of the wallet's keys (`m/44'/60'/0'/0/n`) acts for the account now, after key
/// rotations: `{"acting": n}`; absent means key 0, the account's own.
pub const KEYS_FILE: &str = "keys.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Keys {
    acting: u32,
}

const FORMAT: &str = "medrec-wallet";
const MNEMONIC_KIND: &str = "bip39-entropy-english";

/// Why a wallet could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The directory already holds a wallet; creating one would destroy it.
    #[error("{} already holds a wallet; refusing to overwrite it", dir.display())]
    AlreadyExists {
        /// The wallet directory.
        dir: PathBuf,
    },
    /// The directory holds no (complete) wallet.
    #[error("{} holds no MedRec wallet ({METADATA_FILE} is missing)", dir.display())]
    NotFound {
        /// The wallet directory.
        dir: PathBuf,
    },
    /// `wallet.json` is not valid.
    #[error("{} is not a valid wallet metadata file: {reason}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The files disagree about the account (mixed files from different wallets).
    #[error(
        "the files in {} belong to different wallets: {METADATA_FILE} names account {recorded}, the recovery phrase gives {actual}", dir.display()
    )]
    Inconsistent {
        /// The wallet directory.
        dir: PathBuf,
        /// The account recorded in the metadata or keystore.
        recorded: Address,
        /// The account derived from the decrypted phrase.
        actual: Address,
    },
    /// Creating the directory or a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A keystore could not be written or opened (including a wrong passphrase).
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The recovery phrase is invalid.
    #[error(transparent)]
    Mnemonic(#[from] MnemonicError),
    /// Key derivation failed.
    #[error(transparent)]
    Hd(#[from] HdError),
}

impl WalletError {
    /// Whether this is a wrong passphrase (or a keystore whose MAC fails).
    #[must_use]
    pub const fn is_wrong_passphrase(&self) -> bool {
        matches!(self, Self::Keystore(KeystoreError::WrongPassphrase))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    format: String,
    version: u32,
    account: Address,
    account_path: String,
    delegate_path: String,
}

/// An opened wallet: the phrase, the account key and the delegate keys it derives.
pub struct Wallet {
    dir: PathBuf,
    mnemonic: Mnemonic,
    keys: HdKeys,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("dir", &self.dir)
            .field("account", &self.address())
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |source| WalletError::Io { path: path.to_path_buf(), source }
}

impl Wallet {
    /// Creates a wallet with a new random phrase in `dir` (created with mode 0700 if needed).
    ///
    /// Show [`Wallet::mnemonic`] to the user once so they can write it down.
    ///
    /// # Errors
    /// [`WalletError::AlreadyExists`] if `dir` already holds a wallet, or I/O, randomness and
    /// keystore errors.
    pub fn create(
        dir: &Path,
        count: WordCount,
        passphrase: &Passphrase,
        params: ScryptParams,
    ) -> Result<Self, WalletError> {
        let mnemonic = Mnemonic::generate(count)?;
        Self::recover(dir, mnemonic, passphrase, params)
    }

    /// Creates a wallet in `dir` from an existing phrase (restoring from a backup).
    ///
    /// # Errors
    /// As [`Wallet::create`].
    pub fn recover(
        dir: &Path,
        mnemonic: Mnemonic,
        passphrase: &Passphrase,
        params: ScryptParams,
    ) -> Result<Self, WalletError> {
        if Self::exists(dir) || dir.join(MNEMONIC_FILE).exists() {
            return Err(WalletError::AlreadyExists { dir: dir.to_path_buf() });
        }
        crate::fs::create_private_dir(dir).map_err(io(dir))?;
        let keys = HdKeys::from_mnemonic(&mnemonic)?;
        let account = keys.account().address();

        let entropy = mnemonic.entropy();
        let sealed =
            keystore::encrypt(&entropy, passphrase, params, Some(account), Some(MNEMONIC_KIND))?;
        write(&dir.join(MNEMONIC_FILE), sealed.as_bytes())?;
        let key = keystore::encrypt_key(keys.account(), passphrase, params)?;
        write(&dir.join(ACCOUNT_FILE), key.as_bytes())?;
        // Written last: its presence marks a complete wallet.
        let metadata = Metadata {
            format: FORMAT.to_owned(),
            version: 1,
            account,
            account_path: ACCOUNT_PATH.to_owned(),
            delegate_path: format!("{DELEGATE_PARENT_PATH}/i'"),
        };
        let json = serde_json::to_string_pretty(&metadata).map_err(|e| {
            WalletError::BadMetadata { path: dir.join(METADATA_FILE), reason: e.to_string() }
        })?;
        write(&dir.join(METADATA_FILE), json.as_bytes())?;
        Ok(Self { dir: dir.to_path_buf(), mnemonic, keys })
    }

    /// Whether `dir` holds a complete wallet (its `wallet.json`).
    #[must_use]
    pub fn exists(dir: &Path) -> bool {
        dir.join(METADATA_FILE).is_file()
    }

    /// The account address of the wallet in `dir`, read without a passphrase.
    ///
    /// # Errors
    /// [`WalletError::NotFound`] or [`WalletError::BadMetadata`].
    pub fn read_address(dir: &Path) -> Result<Address, WalletError> {
        Ok(read_metadata(dir)?.account)
    }

    /// Opens the wallet in `dir`: decrypts the phrase and derives the keys.
    ///
    /// # Errors
    /// [`WalletError::Keystore`] with [`KeystoreError::WrongPassphrase`] for a wrong
    /// passphrase (see [`WalletError::is_wrong_passphrase`]); [`WalletError::Inconsistent`] if
    /// the files come from different wallets; [`WalletError::NotFound`] and others.
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self, WalletError> {
        let metadata = read_metadata(dir)?;
        let sealed = keystore::read_file(&dir.join(MNEMONIC_FILE))?;
        let info = keystore::info(&sealed)?;
        if info.kind.as_deref() != Some(MNEMONIC_KIND) {
            return Err(KeystoreError::Malformed(format!(
                "{MNEMONIC_FILE} does not hold a recovery phrase"
            ))
            .into());
        }
        let entropy = keystore::decrypt(&sealed, passphrase)?;
        let mnemonic = Mnemonic::from_entropy(&entropy)?;
        let keys = HdKeys::from_mnemonic(&mnemonic)?;
        let actual = keys.account().address();
        // The account keystore is not decrypted (that would double the unlock time), but its
        // public address field must agree.
        let account_info = keystore::info(&keystore::read_file(&dir.join(ACCOUNT_FILE))?)?;
        for recorded in
            [Some(metadata.account), info.address, account_info.address].into_iter().flatten()
        {
            if recorded != actual {
                return Err(WalletError::Inconsistent { dir: dir.to_path_buf(), recorded, actual });
            }
        }
        Ok(Self { dir: dir.to_path_buf(), mnemonic, keys })
    }

    /// Seals the wallet in its directory under `new` instead of its current passphrase
    /// (the phrase and the account key, each written atomically). The account keystore
    /// is written first and the phrase last, since opening decrypts the phrase: an
    /// interruption between the two leaves a wallet that opens with the old passphrase.
    ///
    /// # Errors
    /// Keystore and I/O errors.
    pub fn change_passphrase(
        &self,
        new: &Passphrase,
        params: ScryptParams,
    ) -> Result<(), WalletError> {
        let account = self.address();
        let key = keystore::encrypt_key(self.keys.account(), new, params)?;
        let sealed = keystore::encrypt(
            &self.mnemonic.entropy(),
            new,
            params,
            Some(account),
            Some(MNEMONIC_KIND),
        )?;
        write(&self.dir.join(ACCOUNT_FILE), key.as_bytes())?;
        write(&self.dir.join(MNEMONIC_FILE), sealed.as_bytes())
    }

    /// The wallet directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The recovery phrase. Show it only when the user asked for it.
    #[must_use]
    pub const fn mnemonic(&self) -> &Mnemonic {
        &self.mnemonic
    }

    /// The participant's account key (`m/44'/60'/0'/0/0`).
    #[must_use]
    pub const fn account(&self) -> &PrivateKeySigner {
        self.keys.account()
    }

    /// The participant's account address.
    #[must_use]
    pub fn address(&self) -> Address {
        self.keys.account().address()
    }

    /// The wallet's key number `index` (`m/44'/60'/0'/0/index`; 0 is the account key).
    ///
    /// # Errors
    /// [`HdError::IndexOutOfRange`] above [`crate::hd::MAX_DELEGATE_INDEX`].
    pub fn account_key(&self, index: u32) -> Result<PrivateKeySigner, HdError> {
        self.keys.account_key(index)
    }

    /// The number of the key that acts for the account now ([`KEYS_FILE`]; 0 until a
    /// rotation), read without a passphrase.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn acting_index(dir: &Path) -> Result<u32, WalletError> {
        let path = dir.join(KEYS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Keys>(&text)
                .map(|k| k.acting)
                .map_err(|e| WalletError::BadMetadata { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The key that acts for the account now (see [`Wallet::acting_index`]).
    ///
    /// # Errors
    /// As [`Wallet::acting_index`] and [`Wallet::account_key`].
    pub fn acting_key(&self) -> Result<PrivateKeySigner, WalletError> {
        Ok(self.account_key(Self::acting_index(&self.dir)?)?)
    }

    /// Records that key `index` acts for the account from now on (after the chain took
    /// the rotation).
    ///
    /// # Errors
    /// I/O errors.
    pub fn set_acting_index(&self, index: u32) -> Result<(), WalletError> {
        let json = serde_json::to_string(&Keys { acting: index }).map_err(|e| {
            WalletError::BadMetadata { path: self.dir.join(KEYS_FILE), reason: e.to_string() }
        })?;
        write(&self.dir.join(KEYS_FILE), json.as_bytes())
    }

    /// The delegate key for relationship `index` (`m/44'/60'/1'/0/index'`).
    ///
    /// # Errors
    /// [`HdError::IndexOutOfRange`] above [`crate::hd::MAX_DELEGATE_INDEX`].
    pub fn delegate(&self, index: u32) -> Result<PrivateKeySigner, HdError> {
        self.keys.delegate(index)
    }

    /// The delegate address for relationship `index`.
    ///
    /// # Errors
    /// As [`Wallet::delegate`].
    pub fn delegate_address(&self, index: u32) -> Result<Address, HdError> {
        self.keys.delegate_address(index)
    }

    /// The relationship index of a delegate `address` among indices `0..limit`, if any.
    ///
    /// # Errors
    /// As [`Wallet::delegate`].
    pub fn find_delegate(&self, address: Address, limit: u32) -> Result<Option<u32>, HdError> {
        self.keys.find_delegate(address, limit)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), WalletError> {
    crate::fs::write_private(path, bytes).map_err(io(path))
}

fn read_metadata(dir: &Path) -> Result<Metadata, WalletError> {
    let path = dir.join(METADATA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WalletError::NotFound { dir: dir.to_path_buf() });
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let metadata: Metadata = serde_json::from_str(&text)
        .map_err(|e| WalletError::BadMetadata { path: path.clone(), reason: e.to_string() })?;
    if metadata.format != FORMAT || metadata.version != 1 {
        return Err(WalletError::BadMetadata {
            path,
            reason: format!(
                "format {} version {} (expected {FORMAT} version 1)",
                metadata.format, metadata.version
            ),
        });
    }
    Ok(metadata)
}
