//! A provider in the Registrar's directory: registering itself when it is a certified
//! institution (or updating its endpoint), and a certified institution registering
//! another provider.
//!
//! A provider's identity commitment is `keccak256(name)`: a provider's name is public,
//! unlike a patient's identity, so it needs no salt.

use crate::{
    chain::Chain,
    error::{Context as _, Result, ensure},
    tx,
};
use alloy::{
    primitives::{Address, B256, keccak256},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use medrec_contracts::Registrar;

/// A provider's identity commitment: `keccak256(name)`.
pub fn provider_identity(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

/// Checks that a gatekeeper endpoint is an `http://` or `https://` URL.
///
/// # Errors
/// When it is not.
pub fn check_endpoint(endpoint: &str) -> Result<()> {
    ensure!(
        endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "the gatekeeper endpoint '{endpoint}' must be an http:// or https:// URL"
    );
    Ok(())
}

/// What [`register_self`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The directory already held this endpoint and key.
    AlreadyRegistered,
    /// The provider was registered already; its endpoint (or key) was updated.
    EndpointUpdated(B256),
    /// The provider, a certified institution, registered itself.
    Registered(B256),
    /// The provider is not registered and not an institution: an institution must
    /// register it.
    NeedsInstitution,
}

impl Registration {
    /// In words: `already registered`, `endpoint updated`, `registered` or `needs an
    /// institution`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyRegistered => "already registered",
            Self::EndpointUpdated(_) => "endpoint updated",
            Self::Registered(_) => "registered",
            Self::NeedsInstitution => "needs an institution",
        }
    }

    /// Whether the provider is in the directory now.
    pub const fn is_registered(self) -> bool {
        !matches!(self, Self::NeedsInstitution)
    }

    /// The transaction sent, if any.
    pub const fn tx(self) -> Option<B256> {
        match self {
            Self::EndpointUpdated(tx) | Self::Registered(tx) => Some(tx),
            Self::AlreadyRegistered | Self::NeedsInstitution => None,
        }
    }
}

/// Puts the provider `signer` into the Registrar's directory as `name` at `endpoint`
/// (with the X25519 public key `key`): updates its entry when it is registered, else
/// registers itself when it is a certified institution.
///
/// # Errors
/// When the Registrar cannot be read or a transaction is refused.
pub async fn register_self(
    chain: &Chain,
    signer: &PrivateKeySigner,
    name: &str,
    endpoint: &str,
    key: B256,
) -> Result<Registration> {
    let account = signer.address();
    let registrar = chain.registrar();
    // `provider()` of the binding is its connection: call the function by its type.
    let entry =
        registrar.call_builder(&Registrar::providerCall { account }).call().await.with_context(
            || {
                format!(
                    "cannot read the Registrar at {} on {}",
                    chain.spec().registrar,
                    chain.rpc_url()
                )
            },
        )?;
    let is_institution = registrar
        .isInstitution(account)
        .call()
        .await
        .context("cannot ask the Registrar whether this account is an institution")?;
    let by_self = chain.registrar_as(signer.clone());
    if entry.identity != B256::ZERO {
        if entry.endpoint == endpoint && entry.encryptionKey == key {
            return Ok(Registration::AlreadyRegistered);
        }
        let receipt =
            tx::send(&by_self.updateProvider(endpoint.to_owned(), key), "updating the endpoint")
                .await?;
        return Ok(Registration::EndpointUpdated(receipt.transaction_hash));
    }
    if !is_institution {
        return Ok(Registration::NeedsInstitution);
    }
    let call = by_self.registerProvider(provider_identity(name), account, endpoint.to_owned(), key);
    let receipt = tx::send(&call, "registering the provider").await?;
    Ok(Registration::Registered(receipt.transaction_hash))
}

/// A certified institution (`institution`) registers provider `account` as `name` at
/// `endpoint`.
///
/// # Errors
/// When `institution` is not a certified institution or the transaction is refused.
pub async fn register_provider(
    chain: &Chain,
    institution: &PrivateKeySigner,
    account: Address,
    name: &str,
    endpoint: &str,
    key: B256,
) -> Result<TransactionReceipt> {
    check_endpoint(endpoint)?;
    ensure!(!name.trim().is_empty(), "the provider's name must not be empty");
    let me = institution.address();
    let is_institution = chain.registrar().isInstitution(me).call().await.with_context(|| {
        format!("cannot read the Registrar at {} on {}", chain.spec().registrar, chain.rpc_url())
    })?;
    ensure!(
        is_institution,
        "{me} is not a certified institution: only a certified institution may register a provider"
    );
    let registrar = chain.registrar_as(institution.clone());
    let call =
        registrar.registerProvider(provider_identity(name), account, endpoint.to_owned(), key);
    tx::send(&call, "registering the provider").await
}
