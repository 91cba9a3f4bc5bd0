//! Benchmark of the consent index (`medrec bench consent`; never run by tests).

use crate::consent::ConsentIndex;
use alloy::{
    primitives::{Address, Log, LogData, aliases::U40, keccak256},
    sol_types::SolEvent,
};
use medrec_contracts::Relationships as R;
use medrec_primitives::RelationshipId;
use std::time::Instant;

/// What the consent benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsentReport {
    /// Grants in the index.
    pub grants: usize,
    /// Relationships in the index.
    pub relationships: usize,
    /// Median time of one decision, nanoseconds (timer overhead included).
    pub decide_p50_ns: f64,
    /// 99th percentile of one decision, nanoseconds.
    pub decide_p99_ns: f64,
    /// Resident memory the index added per grant, bytes (relationships included).
    pub bytes_per_grant: f64,
    /// Time to apply every event, seconds.
    pub build_secs: f64,
}

fn log(address: Address, event: &impl SolEvent) -> Log {
    let data: LogData = event.encode_log_data();
    Log { address, data }
}

/// Builds an index of `grants` grants (ten viewers per relationship) from real event
/// encodings, then times `samples` random decisions one by one.
pub fn consent(grants: usize, samples: usize, rss_kib: impl Fn() -> Option<u64>) -> ConsentReport {
    let contract = Address::repeat_byte(0xcc);
    let viewers_per = 10usize;
    let relationships = grants.div_ceil(viewers_per);
    let viewer = |r: usize, v: usize| {
        Address::from_word(keccak256(((r * viewers_per + v) as u64).to_be_bytes()))
    };
    let patient =
        |r: usize| Address::from_word(keccak256((r as u64 ^ 0xabcd_0000_0000).to_be_bytes()));
    let delegate =
        |r: usize| Address::from_word(keccak256((r as u64 ^ 0xdead_0000_0000).to_be_bytes()));
    let before = rss_kib();
    let started = Instant::now();
    let mut index = ConsentIndex::new(0);
    for r in 0..relationships {
        let id = RelationshipId::derive(patient(r), delegate(r)).0;
        let block = r as u64 + 1;
        index.apply_log(
            block,
            &log(
                contract,
                &R::RelationshipCreated {
                    relId: id,
                    account: patient(r),
                    delegate: delegate(r),
                    actor: patient(r),
                    identity: vec![0x5a; 36].into(),
                },
            ),
        );
        for v in 0..viewers_per.min(grants - r * viewers_per) {
            index.apply_log(
                block,
                &log(
                    contract,
                    &R::ViewerGranted {
                        relId: id,
                        viewer: viewer(r, v),
                        pointers: 1,
                        notBefore: U40::ZERO,
                        expiresAt: U40::from(4_000_000_000u64),
                        actor: patient(r),
                        sealedKey: Default::default(),
                    },
                ),
            );
        }
    }
    let build_secs = started.elapsed().as_secs_f64();
    let after = rss_kib();
    // Random (relationship, viewer) pairs: three in four hold a grant.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let queries: Vec<(RelationshipId, Address)> = (0..samples)
        .map(|_| {
            let r = (next() % relationships as u64) as usize;
            let v = (next() % (viewers_per as u64 * 4 / 3)) as usize;
            (RelationshipId::derive(patient(r), delegate(r)), viewer(r, v))
        })
        .collect();
    let mut times = Vec::with_capacity(samples);
    let mut allowed = 0usize;
    for (id, who) in &queries {
        let t = Instant::now();
        let d = index.decide(*who, id, 0, 1_800_000_000);
        times.push(t.elapsed().as_nanos() as f64);
        allowed += usize::from(std::hint::black_box(d).is_allowed());
    }
    assert!(allowed > 0, "the benchmark must exercise allowed decisions");
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let bytes_per_grant = match (before, after) {
        (Some(b), Some(a)) => (a.saturating_sub(b) * 1024) as f64 / grants as f64,
        _ => f64::NAN,
    };
    ConsentReport {
        grants,
        relationships,
        decide_p50_ns: pct(0.5),
        decide_p99_ns: pct(0.99),
        bytes_per_grant,
        build_secs,
    }
}
