//! Keys for MedRec (issue 5).
//!
//! Will hold BIP-39 mnemonics, encrypted Ethereum v3 keystore files, HD derivation
//! of one delegate address per relationship, and EIP-712 / EIP-4361 signing.
//! Nothing lives here yet.
