//! A micro-benchmark of signed-request verification, for `medrec bench` to report.

use super::request::{Request, RequestVerifier, sign_request};
use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use std::{hint::black_box, time::Instant};

/// Signed requests verified per second on the calling thread.
///
/// Signs `n` distinct `GET` requests (each with its own nonce) beforehand, then times
/// [`RequestVerifier::verify`] over all of them: header parsing, EIP-712 hashing,
/// libsecp256k1 recovery and the replay cache, as the gatekeeper does per request.
/// Returns 0 for `n == 0`.
///
/// # Panics
///
/// If a request fails to sign or to verify, which would be a bug.
pub fn verify_signatures(n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    const CHAIN_ID: u64 = 1337;
    const NOW: u64 = 1_750_000_000;
    let gatekeeper = Address::repeat_byte(0x9a);
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).expect("a valid key");
    let verifier = RequestVerifier::new(CHAIN_ID, gatekeeper).with_replay_capacity(n);
    let path = "/fhir/Observation?patient=Patient/1&_count=50";
    let signed: Vec<_> = (0..n as u64)
        .map(|i| {
            let nonce = B256::left_padding_from(&i.to_be_bytes());
            sign_request(&signer, CHAIN_ID, &Request::new("GET", path, b"", NOW, nonce, gatekeeper))
                .expect("signing with a local key")
        })
        .collect();
    let start = Instant::now();
    for headers in &signed {
        let who =
            verifier.verify("GET", path, b"", black_box(headers), NOW).expect("a valid request");
        black_box(who);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_a_positive_rate() {
        assert!(super::verify_signatures(3) > 0.0);
        assert_eq!(super::verify_signatures(0), 0.0);
    }
}
