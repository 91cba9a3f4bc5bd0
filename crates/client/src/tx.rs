//! The one send-and-confirm: every transaction of every party is sent here, waited
//! for, and checked; a refusal becomes the contract's typed error
//! ([`ContractError`], in [`Error::Refused`]).

use crate::error::{Context as _, Error, Result};
use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::{TransactionReceipt, TransactionRequest},
};
use medrec_contracts::ContractError;
use std::time::Duration;

/// How many times a transaction is sent again when its nonce was taken meanwhile (a
/// provider's gatekeeper anchors its access log from the same account).
const NONCE_RETRIES: u32 = 20;

/// Sends `call`, waits for its receipt and checks that it succeeded; `what` names the
/// step for errors ("creating the relationship"). A nonce taken by another
/// transaction of the same account in between is retried with the next one.
///
/// # Errors
/// [`Error::Refused`] with the contract's custom error when the node refuses the
/// call, [`Error::NoFunds`] when the sender cannot pay for gas, [`Error::Reverted`]
/// when it is mined but reverted, [`Error::Failed`] when the node does not answer.
pub async fn send<P: Provider, D: CallDecoder>(
    call: &CallBuilder<P, D>,
    what: &str,
) -> Result<TransactionReceipt> {
    let mut attempts = 0;
    let pending = loop {
        match call.send().await {
            Ok(pending) => break pending,
            Err(e) if attempts < NONCE_RETRIES && e.to_string().contains("nonce too low") => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(refused(e, what)),
        }
    };
    let hash = *pending.tx_hash();
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("{what}: transaction {hash} was not confirmed"))?;
    confirmed(receipt, what)
}

/// Sends `call` without waiting for it, hands its hash to `seal` (which gets it into a
/// block: a researcher's miner choosing it, say) and awaits that, then waits for the
/// receipt and checks it. Returns the receipt and what `seal` returned.
///
/// # Errors
/// As [`send`]; `seal`'s own outcome is returned for the caller to judge.
pub async fn send_and_seal<P, D, F, Fut, T>(
    call: &CallBuilder<P, D>,
    what: &str,
    seal: F,
) -> Result<(TransactionReceipt, T)>
where
    P: Provider,
    D: CallDecoder,
    F: FnOnce(alloy::primitives::B256) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let pending = call.send().await.map_err(|e| refused(e, what))?;
    let hash = *pending.tx_hash();
    let sealed = seal(hash).await;
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("{what}: transaction {hash} was not confirmed"))?;
    Ok((confirmed(receipt, what)?, sealed))
}

/// Checks that a mined transaction succeeded.
///
/// # Errors
/// [`Error::Reverted`] when it was reverted.
pub fn confirmed(receipt: TransactionReceipt, what: &str) -> Result<TransactionReceipt> {
    if receipt.status() {
        Ok(receipt)
    } else {
        Err(Error::Reverted { what: what.to_owned(), hash: receipt.transaction_hash })
    }
}

/// The error of a call the node refused: the contract's typed reason when it gave one.
pub fn refused(e: alloy::contract::Error, what: &str) -> Error {
    if let Some(data) = e.as_revert_data() {
        return Error::Refused { what: what.to_owned(), error: ContractError::decode(&data) };
    }
    let text = e.to_string();
    if text.contains("insufficient funds") || text.contains("lack of funds") {
        return Error::NoFunds { what: what.to_owned() };
    }
    Error::Failed { what: format!("{what} failed"), source: Box::new(e) }
}

/// Makes sure `account` (`who`: "the delegate", "the patient") holds at least
/// `amount / 2` wei for its gas, sending it `amount` through `funder` (which signs as
/// the paying account) when it holds less. Returns the funding transaction's receipt
/// when one was sent. On a free-gas chain (its node asks a gas price of 0) nothing is
/// sent: nobody needs gas money there, and a transfer would leave the funding trail
/// that such a chain exists to avoid.
///
/// # Errors
/// [`Error::NoFunds`] when the paying account cannot pay, else as [`send`].
pub async fn fund<P: Provider>(
    funder: &P,
    account: Address,
    amount: U256,
    who: &str,
) -> Result<Option<TransactionReceipt>> {
    if amount.is_zero() {
        return Ok(None);
    }
    let price = funder
        .get_gas_price()
        .await
        .with_context(|| format!("cannot read the gas price from the chain node for {who}"))?;
    if price == 0 {
        return Ok(None);
    }
    let balance = funder
        .get_balance(account)
        .await
        .with_context(|| format!("cannot read the balance of {who} from the chain node"))?;
    if balance >= amount / U256::from(2) {
        return Ok(None);
    }
    let what = format!("sending gas money to {who}");
    let tx = TransactionRequest::default().with_to(account).with_value(amount);
    let pending = funder.send_transaction(tx).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("insufficient funds") || text.contains("lack of funds") {
            Error::NoFunds { what: what.clone() }
        } else {
            Error::Failed { what: format!("{what} failed"), source: Box::new(e) }
        }
    })?;
    let receipt = pending
        .get_receipt()
        .await
        .with_context(|| format!("the gas money for {who} was not confirmed"))?;
    confirmed(receipt, &what).map(Some)
}
