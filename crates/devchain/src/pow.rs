//! Proof of Work for the devchain: researchers mine blocks with their own coinbase.
//!
//! A miner asks the node for work (`medrec_getWork`) naming its coinbase and,
//! optionally, which pending transactions to include: the data market of MedRec 1.0,
//! where researchers choose which bounties they want. The work is a *seal hash*
//! committing to the block's parent, number, coinbase, timestamp, difficulty and the
//! root of its transactions. The miner searches a nonce such that
//! `keccak256(seal_hash ‖ nonce) ≤ 2^256 / difficulty` and submits it
//! (`medrec_submitWork`); the first valid solution seals the block.
//!
//! The header proves the work: `mix_hash` holds the seal hash and `nonce` the nonce, so
//! anyone can recompute the seal hash from the header's fields and check the target
//! ([`verify_header`]). Difficulty adjusts towards a target block time.

use alloy::{
    consensus::Header,
    primitives::{Address, B64, B256, U256, keccak256},
};

/// Lowest difficulty a PoW block may have.
pub const MIN_DIFFICULTY: u64 = 1 << 10;

/// The seal hash of a block: what the work commits to.
pub fn seal_hash(
    parent_hash: B256,
    number: u64,
    coinbase: Address,
    timestamp: u64,
    difficulty: U256,
    transactions_root: B256,
) -> B256 {
    let mut buf = Vec::with_capacity(32 + 8 + 20 + 8 + 32 + 32);
    buf.extend_from_slice(parent_hash.as_slice());
    buf.extend_from_slice(&number.to_be_bytes());
    buf.extend_from_slice(coinbase.as_slice());
    buf.extend_from_slice(&timestamp.to_be_bytes());
    buf.extend_from_slice(&difficulty.to_be_bytes::<32>());
    buf.extend_from_slice(transactions_root.as_slice());
    keccak256(buf)
}

/// The largest hash value that meets `difficulty`.
pub fn target(difficulty: U256) -> U256 {
    if difficulty <= U256::from(1u64) { U256::MAX } else { U256::MAX / difficulty }
}

/// Whether `nonce` solves the work `seal_hash` at `difficulty`.
pub fn meets(seal_hash: B256, nonce: u64, difficulty: U256) -> bool {
    work_value(seal_hash, nonce) <= target(difficulty)
}

fn work_value(seal_hash: B256, nonce: u64) -> U256 {
    let mut buf = [0u8; 40];
    buf[..32].copy_from_slice(seal_hash.as_slice());
    buf[32..].copy_from_slice(&nonce.to_be_bytes());
    U256::from_be_bytes(keccak256(buf).0)
}

/// Whether a sealed header carries a valid Proof of Work.
pub fn verify_header(header: &Header) -> bool {
    let expected = seal_hash(
        header.parent_hash,
        header.number,
        header.beneficiary,
        header.timestamp,
        header.difficulty,
        header.transactions_root,
    );
    header.mix_hash == expected
        && meets(expected, u64::from_be_bytes(header.nonce.0), header.difficulty)
}

/// Searches nonces `start, start+1, …` for at most `tries`; returns a solution.
pub fn solve(seal_hash: B256, difficulty: U256, start: u64, tries: u64) -> Option<u64> {
    let target = target(difficulty);
    let mut buf = [0u8; 40];
    buf[..32].copy_from_slice(seal_hash.as_slice());
    (0..tries).map(|i| start.wrapping_add(i)).find(|nonce| {
        buf[32..].copy_from_slice(&nonce.to_be_bytes());
        U256::from_be_bytes(keccak256(buf).0) <= target
    })
}

/// The difficulty of the block after `parent`, whose own parent is `grandparent`:
/// up by an eighth when the parent came faster than `target_secs`, down by an eighth
/// when it took more than twice as long.
pub fn next_difficulty(
    parent: &Header,
    grandparent: Option<&Header>,
    initial: u64,
    target_secs: u64,
) -> U256 {
    let floor = U256::from(MIN_DIFFICULTY.max(1));
    let diff = parent.difficulty;
    let Some(grandparent) = grandparent.filter(|_| diff >= floor) else {
        return U256::from(initial).max(floor);
    };
    let step = (diff / U256::from(8u64)).max(U256::from(1u64));
    let dt = parent.timestamp.saturating_sub(grandparent.timestamp);
    if dt < target_secs {
        diff + step
    } else if dt > 2 * target_secs {
        (diff - step).max(floor)
    } else {
        diff
    }
}

/// A nonce as a header stores it.
pub const fn nonce_field(nonce: u64) -> B64 {
    B64::new(nonce.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_nonce_meets_the_target_and_others_mostly_do_not() {
        let seal = keccak256("work");
        let difficulty = U256::from(5_000u64);
        let nonce = solve(seal, difficulty, 0, 1_000_000).expect("found within a million tries");
        assert!(meets(seal, nonce, difficulty));
        let misses = (0..1_000u64).filter(|n| !meets(seal, *n, difficulty)).count();
        assert!(misses > 900, "about 1 in 5000 nonces meets the target, {misses} of 1000 missed");
        assert!(meets(seal, 12345, U256::from(1u64)), "difficulty 1 accepts anything");
    }

    #[test]
    fn difficulty_follows_the_block_time() {
        let h = |t: u64, d: u64| Header {
            timestamp: t,
            difficulty: U256::from(d),
            ..Default::default()
        };
        let (initial, target_secs) = (1 << 16, 4);
        assert_eq!(
            next_difficulty(&h(10, 1), Some(&h(9, 1)), initial, target_secs),
            U256::from(initial)
        );
        assert_eq!(
            next_difficulty(&h(11, 8000), Some(&h(10, 8000)), initial, target_secs),
            U256::from(9000u64)
        );
        assert_eq!(
            next_difficulty(&h(30, 8000), Some(&h(10, 8000)), initial, target_secs),
            U256::from(7000u64)
        );
        assert_eq!(
            next_difficulty(&h(15, 8000), Some(&h(10, 8000)), initial, target_secs),
            U256::from(8000u64)
        );
        assert_eq!(
            next_difficulty(
                &h(99, MIN_DIFFICULTY),
                Some(&h(10, MIN_DIFFICULTY)),
                initial,
                target_secs
            ),
            U256::from(MIN_DIFFICULTY)
        );
    }

    #[test]
    fn a_header_proves_its_work_and_any_change_breaks_it() {
        let mut header = Header {
            parent_hash: keccak256("parent"),
            number: 7,
            beneficiary: Address::repeat_byte(3),
            timestamp: 1_000,
            difficulty: U256::from(3_000u64),
            transactions_root: keccak256("txs"),
            ..Default::default()
        };
        let seal = seal_hash(
            header.parent_hash,
            7,
            header.beneficiary,
            1_000,
            header.difficulty,
            header.transactions_root,
        );
        let nonce = solve(seal, header.difficulty, 0, 10_000_000).unwrap();
        header.mix_hash = seal;
        header.nonce = nonce_field(nonce);
        assert!(verify_header(&header));
        let mut other_miner = header.clone();
        other_miner.beneficiary = Address::repeat_byte(4);
        assert!(!verify_header(&other_miner), "the coinbase is part of the work");
        let mut easier = header;
        easier.difficulty = U256::from(1u64);
        assert!(!verify_header(&easier));
    }
}
