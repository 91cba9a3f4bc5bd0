//! Transactions and the pool: [`SignedTx`], the checks [`Chain::submit`] makes the
//! way a real node's pool does, the pending transactions per sender and the choice of
//! those a new block includes.

use super::{Chain, Selection, TxError, free::is_zero_price};
use alloy::{
    consensus::{Transaction, TxEnvelope, TxType, transaction::SignerRecoverable},
    eips::eip2718::{Decodable2718, Encodable2718},
    primitives::{Address, B256, Bytes, TxKind, U256},
};
use revm::context::TxEnv;
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
};

/// A transaction with its hash and recovered sender.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// The signed transaction.
    pub envelope: TxEnvelope,
    /// Its hash.
    pub hash: B256,
    /// Who signed it.
    pub sender: Address,
}

#[derive(Debug, Clone)]
pub(super) struct PoolTx {
    pub(super) tx: SignedTx,
    pub(super) arrival: u64,
}

/// Most nonces ahead of a sender's next nonce that the pool queues.
pub const MAX_NONCE_GAP: u64 = 64;

impl Chain {
    /// Checks a signed transaction and queues it; returns its hash.
    pub fn submit(&mut self, raw: &[u8]) -> Result<B256, TxError> {
        let mut buf = raw;
        let envelope =
            TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))?;
        if !buf.is_empty() {
            return Err(TxError::Decode("trailing bytes after the transaction".into()));
        }
        self.submit_envelope(envelope)
    }

    /// Checks a decoded signed transaction and queues it; returns its hash.
    pub fn submit_envelope(&mut self, envelope: TxEnvelope) -> Result<B256, TxError> {
        if let Some(reason) = &self.halted {
            return Err(TxError::Halted(reason.clone()));
        }
        let tx_type = envelope.tx_type();
        if !matches!(tx_type, TxType::Legacy | TxType::Eip2930 | TxType::Eip1559) {
            return Err(TxError::UnsupportedType(tx_type as u8));
        }
        match envelope.chain_id() {
            None => return Err(TxError::Unprotected),
            Some(id) if id != self.config.chain_id => {
                return Err(TxError::WrongChainId { have: id, want: self.config.chain_id });
            }
            Some(_) => {}
        }
        let sender = envelope.recover_signer().map_err(|_| TxError::InvalidSignature)?;
        let hash = *envelope.tx_hash();
        if self.pool_hashes.contains_key(&hash) || self.tx_index.contains_key(&hash) {
            return Err(TxError::AlreadyKnown);
        }
        let next = self.evm.nonce(sender);
        let nonce = envelope.nonce();
        if nonce < next {
            return Err(TxError::NonceTooLow { next, got: nonce });
        }
        if nonce > next + MAX_NONCE_GAP {
            return Err(TxError::NonceTooHigh { next, got: nonce, max_gap: MAX_NONCE_GAP });
        }
        let intrinsic = intrinsic_gas(&envelope);
        if envelope.gas_limit() < intrinsic {
            return Err(TxError::IntrinsicGasTooLow {
                have: envelope.gas_limit(),
                want: intrinsic,
            });
        }
        if envelope.gas_limit() > self.config.block_gas_limit {
            return Err(TxError::GasLimitTooHigh {
                have: envelope.gas_limit(),
                limit: self.config.block_gas_limit,
            });
        }
        if let Some(tip) = envelope.max_priority_fee_per_gas()
            && tip > envelope.max_fee_per_gas()
        {
            return Err(TxError::TipAboveFeeCap);
        }
        let base_fee = self.next_base_fee();
        if envelope.max_fee_per_gas() < u128::from(base_fee) {
            return Err(TxError::FeeCapTooLow { max_fee: envelope.max_fee_per_gas(), base_fee });
        }
        let zero_price = is_zero_price(&envelope, base_fee);
        let tx = SignedTx { envelope, hash, sender };
        if zero_price {
            // A replacement must pay more, which one at zero price never does.
            if self.pool.get(&sender).is_some_and(|q| q.contains_key(&nonce)) {
                return Err(TxError::ReplacementUnderpriced);
            }
            self.admit_free(&tx)?;
        }
        let envelope = &tx.envelope;
        let want = U256::from(envelope.gas_limit()) * U256::from(envelope.max_fee_per_gas())
            + envelope.value();
        let have = self.evm.balance(sender);
        if have < want {
            return Err(if self.config.free_gas {
                TxError::InsufficientFundsFreeGas { have, want }
            } else {
                TxError::InsufficientFunds { have, want }
            });
        }
        let queue = self.pool.entry(sender).or_default();
        if let Some(old) = queue.get(&nonce) {
            let bump = |old: u128| old + old / 10;
            let old_tip = old.tx.envelope.max_priority_fee_per_gas().unwrap_or(0);
            let new_tip = envelope.max_priority_fee_per_gas().unwrap_or(0);
            if envelope.max_fee_per_gas() < bump(old.tx.envelope.max_fee_per_gas())
                || new_tip < bump(old_tip)
            {
                return Err(TxError::ReplacementUnderpriced);
            }
            self.pool_hashes.remove(&old.tx.hash);
        }
        self.arrivals += 1;
        queue.insert(nonce, PoolTx { tx, arrival: self.arrivals });
        self.pool_hashes.insert(hash, (sender, nonce));
        Ok(hash)
    }

    pub(super) fn remove_from_pool(&mut self, tx: &SignedTx) {
        self.pool_hashes.remove(&tx.hash);
        if let Some(queue) = self.pool.get_mut(&tx.sender) {
            queue.remove(&tx.envelope.nonce());
            if queue.is_empty() {
                self.pool.remove(&tx.sender);
            }
        }
    }

    /// Picks pending transactions: per sender, contiguous nonces from the state's;
    /// across senders, by arrival; of each sender's zero-price transactions, at most
    /// [`ChainConfig::free_gas_block_gas`](super::ChainConfig::free_gas_block_gas) gas
    /// (by gas limit), the rest (and the sender's later nonces) waiting.
    pub(super) fn choose(&self, selection: &Selection, gas_limit: u64) -> Vec<SignedTx> {
        let wanted: Option<std::collections::HashSet<B256>> = match selection {
            Selection::All => None,
            Selection::Only(hashes) => Some(hashes.iter().copied().collect()),
        };
        let allowed = |t: &PoolTx| wanted.as_ref().is_none_or(|w| w.contains(&t.tx.hash));
        let mut heads = BinaryHeap::new();
        for (sender, queue) in &self.pool {
            let next = self.evm.nonce(*sender);
            if let Some(t) = queue.get(&next).filter(|t| allowed(t)) {
                heads.push(Reverse((t.arrival, *sender, next)));
            }
        }
        let base_fee = self.next_base_fee();
        let mut free_gas: HashMap<Address, u64> = HashMap::new();
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some(Reverse((_, sender, nonce))) = heads.pop() {
            let t = &self.pool[&sender][&nonce];
            let limit = t.tx.envelope.gas_limit();
            if gas + limit > gas_limit {
                continue;
            }
            if is_zero_price(&t.tx.envelope, base_fee) {
                let used = free_gas.entry(sender).or_default();
                if *used + limit > self.free_allowance(&t.tx) {
                    continue;
                }
                *used += limit;
            }
            gas += limit;
            out.push(t.tx.clone());
            if let Some(n) = self.pool[&sender].get(&(nonce + 1)).filter(|t| allowed(t)) {
                heads.push(Reverse((n.arrival, sender, nonce + 1)));
            }
        }
        out
    }
}

/// The EVM transaction for a signed transaction.
pub fn tx_env(tx: &SignedTx) -> TxEnv {
    let e = &tx.envelope;
    TxEnv {
        tx_type: e.tx_type() as u8,
        caller: tx.sender,
        gas_limit: e.gas_limit(),
        gas_price: e.max_fee_per_gas(),
        kind: e.kind(),
        value: e.value(),
        data: e.input().clone(),
        nonce: e.nonce(),
        chain_id: e.chain_id(),
        access_list: e.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: e.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

/// Intrinsic gas of a transaction at the london spec.
pub fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let data = tx.input();
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = data.len() as u64 - zeros;
    let mut gas = 21_000 + zeros * 4 + nonzeros * 16;
    if tx.kind() == TxKind::Create {
        gas += 32_000;
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
        }
    }
    gas
}

/// Encodes `tx` as the raw bytes `eth_sendRawTransaction` carries.
pub fn encode_raw(tx: &TxEnvelope) -> Bytes {
    tx.encoded_2718().into()
}
