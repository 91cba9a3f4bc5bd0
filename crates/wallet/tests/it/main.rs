//! Integration tests of the wallet: directories on disk, keystore interop, derivation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy::primitives::{Address, address};
use medrec_wallet::keystore::{self, KeystoreError};
use medrec_wallet::{
    ACCOUNT_FILE, METADATA_FILE, MNEMONIC_FILE, Mnemonic, MnemonicError, Passphrase, ScryptParams,
    Wallet, WalletError, WordCount,
};

const TEST_PHRASE: &str = "test test test test test test test test test test test junk";
const FIRST_ADDRESS: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "medrec-wallet-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s).unwrap()
}

fn test_wallet(dir: &Path) -> Wallet {
    Wallet::recover(
        dir,
        Mnemonic::parse(TEST_PHRASE).unwrap(),
        &pass("correct horse battery staple"),
        ScryptParams::light(),
    )
    .unwrap()
}

// Web3 Secret Storage Definition test vectors: private key
// 7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d, password "testpassword".
const VECTOR_KEY: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";

const SCRYPT_VECTOR: &str = r#"{
    "crypto" : {
        "cipher" : "aes-128-ctr",
        "cipherparams" : { "iv" : "83dbcc02d8ccb40e466191a123791e0e" },
        "ciphertext" : "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
        "kdf" : "scrypt",
        "kdfparams" : {
            "dklen" : 32,
            "n" : 262144,
            "p" : 8,
            "r" : 1,
            "salt" : "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"
        },
        "mac" : "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"
    },
    "id" : "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version" : 3
}"#;

const PBKDF2_VECTOR: &str = r#"{
    "crypto" : {
        "cipher" : "aes-128-ctr",
        "cipherparams" : { "iv" : "6087dab2f9fdbbfaddc31a909735c1e6" },
        "ciphertext" : "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
        "kdf" : "pbkdf2",
        "kdfparams" : {
            "c" : 262144,
            "dklen" : 32,
            "prf" : "hmac-sha256",
            "salt" : "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"
        },
        "mac" : "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"
    },
    "id" : "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    "version" : 3
}"#;

#[test]
fn official_scrypt_vector_decrypts() {
    let signer = keystore::decrypt_key(SCRYPT_VECTOR, &pass("testpassword")).unwrap();
    assert_eq!(hex::encode(signer.to_bytes()), VECTOR_KEY);
}

#[test]
fn official_pbkdf2_vector_decrypts() {
    let signer = keystore::decrypt_key(PBKDF2_VECTOR, &pass("testpassword")).unwrap();
    assert_eq!(hex::encode(signer.to_bytes()), VECTOR_KEY);
    assert!(matches!(
        keystore::decrypt_key(PBKDF2_VECTOR, &pass("testpassworD")),
        Err(KeystoreError::WrongPassphrase)
    ));
}

#[test]
fn key_file_round_trip_with_address_and_mode() {
    let dir = TempDir::new();
    let path = dir.path().join("key.json");
    let wallet = test_wallet(&dir.path().join("w"));
    let p = pass("pw");
    keystore::write_key_file(&path, wallet.account(), &p, ScryptParams::light()).unwrap();
    let back = keystore::read_key_file(&path, &p).unwrap();
    assert_eq!(back.address(), FIRST_ADDRESS);
    assert_eq!(back.to_bytes(), wallet.account().to_bytes());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 3);
    assert_eq!(json["crypto"]["kdf"], "scrypt");
    assert_eq!(json["crypto"]["kdfparams"]["n"], 1024);
    assert_eq!(json["crypto"]["cipher"], "aes-128-ctr");
    assert_eq!(json["address"], "f39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    assert_mode_0600(&path);
    // No temporary file is left beside it.
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn address_field_is_checked() {
    let p = pass("pw");
    let signer = keystore::decrypt_key(
        &keystore::encrypt(
            &hex::decode(VECTOR_KEY).unwrap(),
            &p,
            ScryptParams::light(),
            Some(FIRST_ADDRESS),
            None,
        )
        .map(|j| j.replace("\"address\"", "\"unused\""))
        .unwrap(),
        &p,
    )
    .unwrap();
    assert_eq!(hex::encode(signer.to_bytes()), VECTOR_KEY);
    let lying = keystore::encrypt(
        &hex::decode(VECTOR_KEY).unwrap(),
        &p,
        ScryptParams::light(),
        Some(FIRST_ADDRESS),
        None,
    )
    .unwrap();
    assert!(matches!(
        keystore::decrypt_key(&lying, &p),
        Err(KeystoreError::AddressMismatch { recorded, .. }) if recorded == FIRST_ADDRESS
    ));
}

#[test]
fn wallet_from_test_phrase_has_standard_first_address() {
    let dir = TempDir::new();
    let wallet = test_wallet(dir.path());
    assert_eq!(wallet.address(), FIRST_ADDRESS);
    assert_eq!(Wallet::read_address(dir.path()).unwrap(), FIRST_ADDRESS);
    let opened = Wallet::open(dir.path(), &pass("correct horse battery staple")).unwrap();
    assert_eq!(opened.address(), FIRST_ADDRESS);
    assert_eq!(opened.mnemonic().phrase(), TEST_PHRASE);
    // The account keystore opens on its own, as another tool would open it.
    let account = keystore::read_key_file(
        &dir.path().join(ACCOUNT_FILE),
        &pass("correct horse battery staple"),
    )
    .unwrap();
    assert_eq!(account.address(), FIRST_ADDRESS);
}

#[test]
fn delegates_are_distinct_deterministic_and_recoverable() {
    let a = TempDir::new();
    let b = TempDir::new();
    let p = pass("provider passphrase");
    let original =
        Wallet::create(a.path(), WordCount::TwentyFour, &p, ScryptParams::light()).unwrap();
    assert_eq!(original.mnemonic().word_count(), 24);
    let delegates: Vec<Address> = (0..8).map(|i| original.delegate_address(i).unwrap()).collect();
    let mut unique = delegates.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), delegates.len());
    assert!(!delegates.contains(&original.address()));
    assert_eq!(original.delegate(3).unwrap().address(), delegates[3]);

    // Reopened from disk: same keys.
    let reopened = Wallet::open(a.path(), &p).unwrap();
    assert_eq!(reopened.address(), original.address());
    assert_eq!(reopened.delegate_address(5).unwrap(), delegates[5]);

    // Recovered elsewhere from the written-down phrase: same keys, found by scanning.
    let phrase = Mnemonic::parse(original.mnemonic().phrase()).unwrap();
    let recovered =
        Wallet::recover(b.path(), phrase, &pass("new passphrase"), ScryptParams::light()).unwrap();
    assert_eq!(recovered.address(), original.address());
    for (i, d) in delegates.iter().enumerate() {
        assert_eq!(recovered.delegate_address(i as u32).unwrap(), *d);
    }
    assert_eq!(recovered.find_delegate(delegates[6], 10).unwrap(), Some(6));
    assert_eq!(recovered.find_delegate(delegates[6], 6).unwrap(), None);
    assert_eq!(recovered.find_delegate(original.address(), 10).unwrap(), None);
}

#[test]
fn test_phrase_delegates_are_fixed() {
    // Pinned so that a change of derivation path cannot pass unnoticed: a provider's
    // delegates must stay where they were.
    let dir = TempDir::new();
    let wallet = test_wallet(dir.path());
    let expected = wallet.delegate_address(0).unwrap();
    let builder = alloy::signers::local::MnemonicBuilder::<
        alloy::signers::local::coins_bip39::English,
    >::default()
    .phrase(TEST_PHRASE)
    .derivation_path("m/44'/60'/1'/0/0'")
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(builder.address(), expected);
    assert_ne!(expected, FIRST_ADDRESS);
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let dir = TempDir::new();
    test_wallet(dir.path());
    let err = Wallet::open(dir.path(), &pass("Correct horse battery staple")).unwrap_err();
    assert!(err.is_wrong_passphrase(), "{err:?}");
    assert!(err.to_string().contains("the passphrase does not open this keystore"), "{err}");
}

#[test]
fn a_changed_passphrase_opens_the_same_wallet_and_the_old_one_no_longer_does() {
    let dir = TempDir::new();
    let wallet = test_wallet(dir.path());
    let new = pass("a new and longer passphrase");
    wallet.change_passphrase(&new, ScryptParams::light()).unwrap();
    let reopened = Wallet::open(dir.path(), &new).unwrap();
    assert_eq!(reopened.address(), wallet.address());
    assert_eq!(reopened.mnemonic().phrase(), TEST_PHRASE);
    let old = Wallet::open(dir.path(), &pass("correct horse battery staple")).unwrap_err();
    assert!(old.is_wrong_passphrase(), "{old:?}");
    // The account keystore, for other Ethereum tools, follows the new passphrase too.
    let account = std::fs::read_to_string(dir.path().join(ACCOUNT_FILE)).unwrap();
    assert_eq!(keystore::decrypt_key(&account, &new).unwrap().address(), wallet.address());
    assert!(keystore::decrypt_key(&account, &pass("correct horse battery staple")).is_err());
}

#[test]
fn tampered_files_fail() {
    let dir = TempDir::new();
    test_wallet(dir.path());
    let p = pass("correct horse battery staple");
    let path = dir.path().join(MNEMONIC_FILE);
    let original = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&original).unwrap();
    let ciphertext = json["crypto"]["ciphertext"].as_str().unwrap().to_owned();
    let flipped =
        format!("{}{}", if ciphertext.starts_with('0') { '1' } else { '0' }, &ciphertext[1..]);
    std::fs::write(&path, original.replace(&ciphertext, &flipped)).unwrap();
    let err = Wallet::open(dir.path(), &p).unwrap_err();
    assert!(matches!(err, WalletError::Keystore(KeystoreError::WrongPassphrase)), "{err:?}");

    std::fs::write(&path, "{ not json").unwrap();
    let err = Wallet::open(dir.path(), &p).unwrap_err();
    assert!(matches!(err, WalletError::Keystore(KeystoreError::Malformed(_))), "{err:?}");

    // Metadata naming another account: the files are from different wallets.
    std::fs::write(&path, &original).unwrap();
    let meta_path = dir.path().join(METADATA_FILE);
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        meta.replace(&format!("{FIRST_ADDRESS:#x}"), "0x0000000000000000000000000000000000000001"),
    )
    .unwrap();
    let err = Wallet::open(dir.path(), &p).unwrap_err();
    assert!(matches!(err, WalletError::Inconsistent { .. }), "{err:?}");
    std::fs::write(&meta_path, meta).unwrap();
    assert_eq!(Wallet::open(dir.path(), &p).unwrap().address(), FIRST_ADDRESS);
}

#[test]
fn bad_mnemonics_are_named() {
    assert_eq!(
        Mnemonic::parse("test test test test test test test test test test junk").unwrap_err(),
        MnemonicError::WrongLength(11)
    );
    let err =
        Mnemonic::parse("test test test test test test test test test test test jnuk").unwrap_err();
    assert_eq!(err, MnemonicError::UnknownWord { position: 12 });
    assert!(!err.to_string().contains("jnuk"));
    assert_eq!(
        Mnemonic::parse("junk test test test test test test test test test test test").unwrap_err(),
        MnemonicError::BadChecksum
    );
}

#[test]
fn files_are_private_and_creation_refuses_to_overwrite() {
    let dir = TempDir::new();
    let wallet_dir = dir.path().join("nested").join("wallet");
    test_wallet(&wallet_dir);
    for name in [METADATA_FILE, MNEMONIC_FILE, ACCOUNT_FILE] {
        assert_mode_0600(&wallet_dir.join(name));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&wallet_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let mnemonic_json = std::fs::read_to_string(wallet_dir.join(MNEMONIC_FILE)).unwrap();
    assert!(!mnemonic_json.contains("junk"));
    let err = Wallet::create(&wallet_dir, WordCount::Twelve, &pass("other"), ScryptParams::light())
        .unwrap_err();
    assert!(matches!(err, WalletError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(Wallet::read_address(&wallet_dir).unwrap(), FIRST_ADDRESS);
    let missing = Wallet::open(&dir.path().join("absent"), &pass("x")).unwrap_err();
    assert!(matches!(missing, WalletError::NotFound { .. }), "{missing:?}");
}

#[test]
fn debug_output_has_no_secrets() {
    let dir = TempDir::new();
    let wallet = test_wallet(dir.path());
    let shown = format!("{wallet:?} {:?}", wallet.mnemonic());
    assert!(!shown.contains("junk"), "{shown}");
    let key = hex::encode(wallet.account().to_bytes());
    assert!(!shown.contains(&key), "{shown}");
}

fn assert_mode_0600(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}

#[test]
fn the_acting_key_follows_rotations_and_is_read_without_a_passphrase() {
    let dir = TempDir::new();
    let wallet = test_wallet(dir.path());
    // Until a rotation, key 0 (the account's own) acts.
    assert_eq!(Wallet::acting_index(dir.path()).unwrap(), 0);
    assert_eq!(wallet.acting_key().unwrap().address(), FIRST_ADDRESS);
    wallet.set_acting_index(2).unwrap();
    assert_eq!(Wallet::acting_index(dir.path()).unwrap(), 2);
    assert_mode_0600(&dir.path().join(medrec_wallet::KEYS_FILE));
    // The standard third address of the test phrase; the account stays key 0's.
    let third = address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
    let reopened = Wallet::open(dir.path(), &pass("correct horse battery staple")).unwrap();
    assert_eq!(reopened.acting_key().unwrap().address(), third);
    assert_eq!(reopened.account_key(2).unwrap().address(), third);
    assert_eq!(reopened.address(), FIRST_ADDRESS);
    // A damaged file is an error, not key 0.
    std::fs::write(dir.path().join(medrec_wallet::KEYS_FILE), "nope").unwrap();
    assert!(Wallet::acting_index(dir.path()).is_err());
}
