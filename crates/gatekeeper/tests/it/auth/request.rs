//! Per-request EIP-712 signatures, through `RequestVerifier::verify` with a fixed clock.

use super::{CHAIN_ID, NOW, alice, gatekeeper, mallory};
use alloy::{
    hex,
    primitives::{Address, B256, U256, keccak256},
    signers::Signer,
    sol_types::{SolStruct, SolValue},
};
use axum::http::{HeaderMap, HeaderValue};
use medrec_gatekeeper::auth::{
    AuthError, RequestVerifier,
    request::{self, NONCE_HEADER, Request, SIGNATURE_HEADER, SIGNER_HEADER, TIME_HEADER},
    sign_request,
};
use std::time::Duration;

const PATH: &str = "/fhir/Observation?patient=Patient/1&code=http://loinc.org|2498-4";
const BODY: &[u8] = br#"{"resourceType":"Observation","status":"final"}"#;

fn nonce(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn verifier() -> RequestVerifier {
    RequestVerifier::new(CHAIN_ID, gatekeeper())
}

/// Alice signs `POST PATH` with `BODY` at `NOW` with nonce 1.
fn signed() -> HeaderMap {
    sign_request(&alice(), CHAIN_ID, &Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper()))
        .unwrap()
}

fn without_signer(mut headers: HeaderMap) -> HeaderMap {
    headers.remove(SIGNER_HEADER);
    headers
}

fn set(mut headers: HeaderMap, name: axum::http::HeaderName, value: &str) -> HeaderMap {
    headers.insert(name, HeaderValue::from_str(value).unwrap());
    headers
}

/// The refusal of a request Alice did not sign as it arrives, naming her as signer.
fn assert_mismatch(result: Result<Address, AuthError>) {
    match result {
        Err(AuthError::SignerMismatch { claimed, recovered }) => {
            assert_eq!(claimed, alice().address());
            assert_ne!(recovered, alice().address());
        }
        other => panic!("expected SignerMismatch, got {other:?}"),
    }
}

#[test]
fn a_valid_signature_recovers_the_signer() {
    let v = verifier();
    assert_eq!(v.verify("POST", PATH, BODY, &signed(), NOW), Ok(alice().address()));

    // Without the optional X-MedRec-Signer header too, and with no body.
    let h = sign_request(
        &mallory(),
        CHAIN_ID,
        &Request::new("GET", "/fhir/metadata", b"", NOW, nonce(2), gatekeeper()),
    )
    .unwrap();
    assert_eq!(
        v.verify("GET", "/fhir/metadata", b"", &without_signer(h), NOW),
        Ok(mallory().address())
    );
}

#[test]
fn the_signing_hash_is_plain_eip712() {
    // Recomputed by hand, as a client in another language would.
    let typehash = keccak256(
        "Request(string method,string pathAndQuery,bytes32 bodyHash,uint64 time,bytes32 nonce,address gatekeeper)",
    );
    let struct_hash = keccak256(
        (
            typehash,
            keccak256("POST"),
            keccak256(PATH),
            keccak256(BODY),
            U256::from(NOW),
            nonce(1),
            gatekeeper(),
        )
            .abi_encode(),
    );
    let domain_typehash = keccak256("EIP712Domain(string name,string version,uint256 chainId)");
    let separator = keccak256(
        (domain_typehash, keccak256("MedRec Gatekeeper"), keccak256("1"), U256::from(CHAIN_ID))
            .abi_encode(),
    );
    let digest =
        keccak256([&[0x19, 0x01][..], separator.as_slice(), struct_hash.as_slice()].concat());

    let request = Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper());
    assert_eq!(request.eip712_signing_hash(&request::domain(CHAIN_ID)), digest);
}

#[tokio::test]
async fn a_signature_from_the_async_signer_api_verifies_too() {
    let request = Request::new("GET", PATH, b"", NOW, nonce(9), gatekeeper());
    let hash = request.eip712_signing_hash(&request::domain(CHAIN_ID));
    let sig = alice().sign_hash(&hash).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&hex::encode_prefixed(sig.as_bytes())).unwrap(),
    );
    h.insert(TIME_HEADER, HeaderValue::from(NOW));
    h.insert(NONCE_HEADER, HeaderValue::from_str(&nonce(9).to_string()).unwrap());
    assert_eq!(verifier().verify("GET", PATH, b"", &h, NOW), Ok(alice().address()));
}

#[test]
fn a_signature_by_another_key_is_refused() {
    // Mallory signs the request but names Alice as the signer.
    let h = sign_request(
        &mallory(),
        CHAIN_ID,
        &Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper()),
    )
    .unwrap();
    let h = set(h, SIGNER_HEADER, &alice().address().to_string());
    assert_eq!(
        verifier().verify("POST", PATH, BODY, &h, NOW),
        Err(AuthError::SignerMismatch {
            claimed: alice().address(),
            recovered: mallory().address()
        })
    );
}

#[test]
fn a_tampered_method_is_refused() {
    assert_mismatch(verifier().verify("PUT", PATH, BODY, &signed(), NOW));
    // Without the signer header it authenticates nobody Alice knows.
    let got = verifier().verify("PUT", PATH, BODY, &without_signer(signed()), NOW).unwrap();
    assert_ne!(got, alice().address());
}

#[test]
fn a_tampered_path_or_query_is_refused() {
    assert_mismatch(verifier().verify(
        "POST",
        "/fhir/Observation?patient=Patient/2",
        BODY,
        &signed(),
        NOW,
    ));
    assert_mismatch(verifier().verify(
        "POST",
        &format!("{PATH}&_count=1000"),
        BODY,
        &signed(),
        NOW,
    ));
    let got =
        verifier().verify("POST", "/fhir/Patient", BODY, &without_signer(signed()), NOW).unwrap();
    assert_ne!(got, alice().address());
}

#[test]
fn a_tampered_body_is_refused() {
    let tampered = br#"{"resourceType":"Observation","status":"amended"}"#;
    assert_mismatch(verifier().verify("POST", PATH, tampered, &signed(), NOW));
    assert_mismatch(verifier().verify("POST", PATH, b"", &signed(), NOW));
    let got = verifier().verify("POST", PATH, tampered, &without_signer(signed()), NOW).unwrap();
    assert_ne!(got, alice().address());
}

#[test]
fn a_tampered_time_is_refused() {
    let h = set(signed(), TIME_HEADER, &(NOW + 1).to_string());
    assert_mismatch(verifier().verify("POST", PATH, BODY, &h, NOW));
}

#[test]
fn a_tampered_nonce_is_refused() {
    let h = set(signed(), NONCE_HEADER, &nonce(2).to_string());
    assert_mismatch(verifier().verify("POST", PATH, BODY, &h, NOW));
}

#[test]
fn a_signature_for_another_chain_is_refused() {
    let h =
        sign_request(&alice(), 1, &Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper()))
            .unwrap();
    assert_mismatch(verifier().verify("POST", PATH, BODY, &h, NOW));
    // And the other way round: a verifier on another chain refuses our signature.
    let other_chain = RequestVerifier::new(CHAIN_ID + 1, gatekeeper());
    assert_mismatch(other_chain.verify("POST", PATH, BODY, &signed(), NOW));
}

#[test]
fn a_signature_for_another_gatekeeper_is_refused() {
    let elsewhere = Address::repeat_byte(0x77);
    let h = sign_request(
        &alice(),
        CHAIN_ID,
        &Request::new("POST", PATH, BODY, NOW, nonce(1), elsewhere),
    )
    .unwrap();
    assert_mismatch(verifier().verify("POST", PATH, BODY, &h, NOW));
}

#[test]
fn an_expired_time_is_refused() {
    let v = verifier();
    assert_eq!(
        v.verify("POST", PATH, BODY, &signed(), NOW + 31),
        Err(AuthError::RequestExpired { time: NOW, now: NOW + 31, skew: 30 })
    );
    assert_eq!(v.remembered(), 0, "a refused request takes no place in the replay cache");
    // The edge of the window is still inside it.
    assert_eq!(v.verify("POST", PATH, BODY, &signed(), NOW + 30), Ok(alice().address()));
}

#[test]
fn a_time_in_the_future_is_refused() {
    let v = verifier();
    assert_eq!(
        v.verify("POST", PATH, BODY, &signed(), NOW - 31),
        Err(AuthError::RequestFromFuture { time: NOW, now: NOW - 31, skew: 30 })
    );
    assert_eq!(v.verify("POST", PATH, BODY, &signed(), NOW - 30), Ok(alice().address()));
}

#[test]
fn the_skew_is_configurable() {
    let v = verifier().with_skew(Duration::from_secs(5));
    assert_eq!(v.skew(), 5);
    assert!(matches!(
        v.verify("POST", PATH, BODY, &signed(), NOW + 6),
        Err(AuthError::RequestExpired { skew: 5, .. })
    ));
}

#[test]
fn a_replayed_nonce_is_refused() {
    let v = verifier();
    assert_eq!(v.verify("POST", PATH, BODY, &signed(), NOW), Ok(alice().address()));
    assert_eq!(
        v.verify("POST", PATH, BODY, &signed(), NOW + 10),
        Err(AuthError::ReplayedNonce { signer: alice().address(), nonce: nonce(1) })
    );
    // Another request by Alice with the same nonce is a replay too.
    let h = sign_request(
        &alice(),
        CHAIN_ID,
        &Request::new("GET", "/fhir/metadata", b"", NOW, nonce(1), gatekeeper()),
    )
    .unwrap();
    assert!(matches!(
        v.verify("GET", "/fhir/metadata", b"", &h, NOW),
        Err(AuthError::ReplayedNonce { .. })
    ));
    // Mallory's nonces are her own.
    let h = sign_request(
        &mallory(),
        CHAIN_ID,
        &Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper()),
    )
    .unwrap();
    assert_eq!(v.verify("POST", PATH, BODY, &h, NOW), Ok(mallory().address()));
    // Once the window has passed the request is refused for its age.
    assert!(matches!(
        v.verify("POST", PATH, BODY, &signed(), NOW + 31),
        Err(AuthError::RequestExpired { .. })
    ));
}

#[test]
fn the_replay_cache_is_bounded_and_expires() {
    let v = verifier().with_replay_capacity(2);
    let req = |n: u8, time: u64| {
        sign_request(
            &alice(),
            CHAIN_ID,
            &Request::new("GET", "/", b"", time, nonce(n), gatekeeper()),
        )
        .unwrap()
    };
    assert!(v.verify("GET", "/", b"", &req(1, NOW), NOW).is_ok());
    assert!(v.verify("GET", "/", b"", &req(2, NOW), NOW).is_ok());
    assert_eq!(
        v.verify("GET", "/", b"", &req(3, NOW), NOW),
        Err(AuthError::ReplayCacheFull { capacity: 2 })
    );
    assert_eq!(v.remembered(), 2);
    // After the first two's window has passed, their places are free again.
    assert_eq!(v.verify("GET", "/", b"", &req(3, NOW + 31), NOW + 31), Ok(alice().address()));
    assert_eq!(v.remembered(), 1);
}

#[test]
fn strangers_do_not_reach_the_replay_cache() {
    let v = verifier();
    let known = |a: Address| a == alice().address();
    let h = sign_request(
        &mallory(),
        CHAIN_ID,
        &Request::new("POST", PATH, BODY, NOW, nonce(1), gatekeeper()),
    )
    .unwrap();
    assert_eq!(
        v.verify_known("POST", PATH, BODY, &h, NOW, known),
        Err(AuthError::UnknownSigner(mallory().address()))
    );
    assert_eq!(v.remembered(), 0);
    assert_eq!(v.verify_known("POST", PATH, BODY, &signed(), NOW, known), Ok(alice().address()));
}

#[test]
fn each_missing_header_is_named() {
    for (name, display) in [
        (SIGNATURE_HEADER, "X-MedRec-Signature"),
        (TIME_HEADER, "X-MedRec-Time"),
        (NONCE_HEADER, "X-MedRec-Nonce"),
    ] {
        let mut h = signed();
        h.remove(name);
        assert_eq!(
            verifier().verify("POST", PATH, BODY, &h, NOW),
            Err(AuthError::MissingHeader(display))
        );
    }
}

#[test]
fn each_malformed_header_is_named() {
    let sig = signed()[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    let cases = [
        (SIGNATURE_HEADER, sig.trim_start_matches("0x").to_owned(), "X-MedRec-Signature"),
        (SIGNATURE_HEADER, sig[..sig.len() - 2].to_owned(), "X-MedRec-Signature"),
        (SIGNATURE_HEADER, format!("{}25", &sig[..sig.len() - 2]), "X-MedRec-Signature"),
        (TIME_HEADER, "yesterday".to_owned(), "X-MedRec-Time"),
        (TIME_HEADER, format!("{NOW}.5"), "X-MedRec-Time"),
        (NONCE_HEADER, "0x1234".to_owned(), "X-MedRec-Nonce"),
        (NONCE_HEADER, "not hex at all".to_owned(), "X-MedRec-Nonce"),
        (SIGNER_HEADER, "alice".to_owned(), "X-MedRec-Signer"),
    ];
    for (name, value, display) in cases {
        let h = set(signed(), name, &value);
        match verifier().verify("POST", PATH, BODY, &h, NOW) {
            Err(AuthError::MalformedHeader { header, reason }) => {
                assert_eq!(header, display, "{value}");
                assert!(!reason.is_empty());
            }
            other => panic!("{display}: {value}: expected MalformedHeader, got {other:?}"),
        }
    }
    // Sent twice.
    let mut h = signed();
    h.append(NONCE_HEADER, HeaderValue::from_str(&nonce(2).to_string()).unwrap());
    assert_eq!(
        verifier().verify("POST", PATH, BODY, &h, NOW),
        Err(AuthError::MalformedHeader { header: "X-MedRec-Nonce", reason: "sent more than once" })
    );
}

#[test]
fn an_unrecoverable_signature_is_refused() {
    // r = 0 is no point on the curve.
    let zero_r = format!("0x{}{}1b", "00".repeat(32), "11".repeat(32));
    let h = set(signed(), SIGNATURE_HEADER, &zero_r);
    assert!(matches!(
        verifier().verify("POST", PATH, BODY, &h, NOW),
        Err(AuthError::InvalidSignature(_))
    ));
}

#[test]
fn refusals_have_their_status() {
    let v = verifier();
    assert_eq!(v.verify("POST", PATH, BODY, &signed(), NOW + 60).unwrap_err().status(), 401);
    assert_eq!(v.verify("POST", PATH, BODY, &HeaderMap::new(), NOW).unwrap_err().status(), 400);
    assert_eq!(
        v.verify("POST", PATH, BODY, &set(signed(), TIME_HEADER, "x"), NOW).unwrap_err().status(),
        400
    );
}
