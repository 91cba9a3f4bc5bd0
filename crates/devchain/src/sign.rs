//! Signing transactions with a local key (development accounts, tests, benchmarks).

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::eip2718::Encodable2718,
    network::TxSignerSync,
    primitives::Bytes,
    signers::local::PrivateKeySigner,
};

/// Signs an EIP-1559 transaction; returns the raw bytes for `eth_sendRawTransaction`.
pub fn sign_eip1559(signer: &PrivateKeySigner, mut tx: TxEip1559) -> Bytes {
    let signature = signer.sign_transaction_sync(&mut tx).expect("local signing cannot fail");
    TxEnvelope::from(tx.into_signed(signature)).encoded_2718().into()
}
