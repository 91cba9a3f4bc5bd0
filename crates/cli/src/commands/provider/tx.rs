//! Sending the provider's transactions: confirmed receipts, refusals decoded into the
//! contracts' own sentences, and gas money for delegates.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::{TransactionReceipt, TransactionRequest},
};
use anyhow::{Context, anyhow};
use medrec_contracts::ContractError;

/// Sends `call`, waits for its receipt and checks that it succeeded; `what` names the
/// action for error messages ("creating the relationship").
pub(super) async fn send<P: Provider, D: CallDecoder>(
    call: CallBuilder<P, D>,
    what: &str,
) -> anyhow::Result<TransactionReceipt> {
    let pending = call.send().await.map_err(|e| refused(&e, what))?;
    let hash = *pending.tx_hash();
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("{what}: transaction {hash} was not confirmed"))?;
    anyhow::ensure!(receipt.status(), "{what}: transaction {hash} was reverted on chain");
    Ok(receipt)
}

/// The error of a call the node refused: the contract's reason when it gave one.
pub(super) fn refused(e: &alloy::contract::Error, what: &str) -> anyhow::Error {
    if let Some(data) = e.as_revert_data() {
        return anyhow!(ContractError::decode(&data)).context(format!("{what} was refused"));
    }
    let text = e.to_string();
    if text.contains("insufficient funds") || text.contains("lack of funds") {
        return anyhow!(
            "{what} failed: the sending account has too little ETH to pay for gas (fund it, then try again)"
        );
    }
    anyhow!(text).context(format!("{what} failed"))
}

/// Makes sure `account` (`who`: "the delegate", "the patient") holds at least
/// `amount / 2` wei for its gas, sending it `amount` from the provider's account (through
/// `provider`, which signs as the provider) when it holds less. Returns the funding
/// transaction's receipt when one was sent.
pub(super) async fn fund<P: Provider>(
    provider: &P,
    account: Address,
    amount: U256,
    who: &str,
) -> anyhow::Result<Option<TransactionReceipt>> {
    if amount.is_zero() {
        return Ok(None);
    }
    let balance = provider
        .get_balance(account)
        .await
        .with_context(|| format!("cannot read the balance of {who} from the chain node"))?;
    if balance >= amount / U256::from(2) {
        return Ok(None);
    }
    let tx = TransactionRequest::default().with_to(account).with_value(amount);
    let pending = provider.send_transaction(tx).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("insufficient funds") || text.contains("lack of funds") {
            anyhow!(
                "cannot pay the gas of {who}: the provider's account has too little ETH (fund it, then try again)"
            )
        } else {
            anyhow!(text).context(format!("sending gas money to {who} failed"))
        }
    })?;
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("the gas money for {who} was not confirmed"))?;
    anyhow::ensure!(receipt.status(), "sending gas money to {who} was reverted");
    Ok(Some(receipt))
}
