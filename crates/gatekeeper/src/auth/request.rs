//! Per-request EIP-712 signatures.
//!
//! The requester signs, for every HTTP request, the typed struct
//!
//! ```text
//! Request(string method,string pathAndQuery,bytes32 bodyHash,uint64 time,bytes32 nonce,address gatekeeper)
//! ```
//!
//! under the domain `{name: "MedRec Gatekeeper", version: "1", chainId}`, where
//! `bodyHash` is the keccak-256 of the raw body (of the empty string when there is none)
//! and `gatekeeper` is the gatekeeper's own address. It sends:
//!
//! | header | value |
//! | --- | --- |
//! | `X-MedRec-Signature` | `0x` and the 65-byte signature `r ‖ s ‖ v` in hex |
//! | `X-MedRec-Time` | the signed `time`, unix seconds in decimal |
//! | `X-MedRec-Nonce` | `0x` and the 32-byte nonce in hex |
//! | `X-MedRec-Signer` | optional: `0x` and the signer's address; when present the gatekeeper refuses a signature that recovers to any other address, with an error that says so |
//!
//! The gatekeeper accepts a request whose time is within the allowed skew of its own
//! clock (30 s by default) and whose (signer, nonce) it has not seen within that window.

use super::{AuthError, expiring::ExpiringMap};
use alloy::{
    hex,
    primitives::{Address, B256, KECCAK256_EMPTY, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

alloy::sol! {
    /// One HTTP request to a gatekeeper, as its requester signs it (EIP-712).
    #[derive(Debug, PartialEq, Eq)]
    struct Request {
        /// The HTTP method, as sent (`GET`, `POST`, …).
        string method;
        /// The request target: path and query string, as sent (`/fhir/Patient?_id=1`).
        string pathAndQuery;
        /// keccak-256 of the raw body; of the empty string when there is no body.
        bytes32 bodyHash;
        /// When the request was signed, unix seconds.
        uint64 time;
        /// 32 random bytes, never reused by the same signer within the time window.
        bytes32 nonce;
        /// The address of the gatekeeper the request is for.
        address gatekeeper;
    }
}

/// The EIP-712 domain name.
pub const DOMAIN_NAME: &str = "MedRec Gatekeeper";
/// The EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";

/// `X-MedRec-Signature`: `0x` and the 65-byte signature in hex.
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-medrec-signature");
/// `X-MedRec-Time`: the signed time, unix seconds in decimal.
pub const TIME_HEADER: HeaderName = HeaderName::from_static("x-medrec-time");
/// `X-MedRec-Nonce`: `0x` and the 32-byte nonce in hex.
pub const NONCE_HEADER: HeaderName = HeaderName::from_static("x-medrec-nonce");
/// `X-MedRec-Signer` (optional): `0x` and the signer's 20-byte address in hex.
pub const SIGNER_HEADER: HeaderName = HeaderName::from_static("x-medrec-signer");

const SIGNATURE: &str = "X-MedRec-Signature";
const TIME: &str = "X-MedRec-Time";
const NONCE: &str = "X-MedRec-Nonce";
const SIGNER: &str = "X-MedRec-Signer";

/// The default allowed difference between a request's time and the gatekeeper's clock.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);
/// The default bound on remembered (signer, nonce) pairs.
///
/// Each costs about 140 bytes, so the default is about 70 MB at worst; at 8,000 signed
/// requests per second and a 30 s skew about 240,000 are live.
pub const DEFAULT_REPLAY_CAPACITY: usize = 500_000;

/// The EIP-712 domain of the gatekeepers on chain `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
    }
}

impl Request {
    /// The struct for one request; the body is hashed here.
    pub fn new(
        method: &str,
        path_and_query: &str,
        body: &[u8],
        time: u64,
        nonce: B256,
        gatekeeper: Address,
    ) -> Self {
        Self {
            method: method.to_owned(),
            pathAndQuery: path_and_query.to_owned(),
            bodyHash: keccak256(body),
            time,
            nonce,
            gatekeeper,
        }
    }
}

/// Signs `request` for the gatekeepers of chain `chain_id` and returns the headers to
/// send with it (`X-MedRec-Signer` included).
///
/// Build `request` with [`Request::new`]: its path and query must be exactly the request
/// target the gatekeeper will see, its body exactly the bytes sent, its gatekeeper the
/// address of the gatekeeper addressed. Use [`random_nonce`] for the nonce.
pub fn sign_request(
    signer: &PrivateKeySigner,
    chain_id: u64,
    request: &Request,
) -> Result<HeaderMap, alloy::signers::Error> {
    let hash = request.eip712_signing_hash(&domain(chain_id));
    let signature = signer.sign_hash_sync(&hash)?;
    let mut headers = HeaderMap::with_capacity(4);
    for (name, value) in [
        (SIGNATURE_HEADER, hex::encode_prefixed(signature.as_bytes())),
        (TIME_HEADER, request.time.to_string()),
        (NONCE_HEADER, request.nonce.to_string()),
        (SIGNER_HEADER, signer.address().to_checksum(None)),
    ] {
        let value = HeaderValue::from_str(&value).expect("hex and digits are valid header values");
        headers.insert(name, value);
    }
    Ok(headers)
}

/// 32 random bytes for a request's nonce.
pub fn random_nonce() -> Result<B256, AuthError> {
    super::random::bytes::<32>().map(B256::from)
}

/// Checks signed requests for one gatekeeper: headers, time window, signature, replays.
///
/// Share one verifier (behind an `Arc`) between all the requests of a gatekeeper: its
/// replay cache only works if every request goes through it.
#[derive(Debug)]
pub struct RequestVerifier {
    chain_id: u64,
    gatekeeper: Address,
    /// The EIP-712 domain separator and the `Request` type hash: the same for every
    /// request, so hashed once here rather than per request.
    separator: B256,
    type_hash: B256,
    skew: u64,
    replay: Mutex<ExpiringMap<(Address, B256), ()>>,
}

impl RequestVerifier {
    /// A verifier for the gatekeeper at `gatekeeper` on chain `chain_id`, with the
    /// default skew ([`DEFAULT_SKEW`]) and replay capacity ([`DEFAULT_REPLAY_CAPACITY`]).
    pub fn new(chain_id: u64, gatekeeper: Address) -> Self {
        Self {
            chain_id,
            gatekeeper,
            separator: domain(chain_id).separator(),
            type_hash: keccak256(Request::eip712_encode_type().as_bytes()),
            skew: DEFAULT_SKEW.as_secs(),
            replay: Mutex::new(ExpiringMap::new(DEFAULT_REPLAY_CAPACITY)),
        }
    }

    /// Sets the allowed difference between a request's time and the gatekeeper's clock
    /// (whole seconds).
    #[must_use]
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew.as_secs();
        self
    }

    /// Sets how many (signer, nonce) pairs may be remembered at once; past that, signed
    /// requests are refused with [`AuthError::ReplayCacheFull`] until some expire.
    #[must_use]
    pub fn with_replay_capacity(self, capacity: usize) -> Self {
        Self { replay: Mutex::new(ExpiringMap::new(capacity)), ..self }
    }

    /// The chain id of the EIP-712 domain.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The gatekeeper's own address, which requests must name.
    pub fn gatekeeper(&self) -> Address {
        self.gatekeeper
    }

    /// The allowed clock skew in seconds.
    pub fn skew(&self) -> u64 {
        self.skew
    }

    /// How many (signer, nonce) pairs are remembered now.
    pub fn remembered(&self) -> usize {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Authenticates one request and returns its signer.
    ///
    /// Checks, in order: the headers are present and well formed; the signed time is
    /// within the skew of `now` (unix seconds); the signature recovers (libsecp256k1) to
    /// an address, the one in `X-MedRec-Signer` if that is sent; the signer has not used
    /// the nonce within the window. The (signer, nonce) pair is then remembered until
    /// the window has passed.
    ///
    /// A signature over other data (another method, path, body, time, nonce, chain id or
    /// gatekeeper) recovers to an unrelated address: without `X-MedRec-Signer` it is
    /// accepted as that address, which the consent index knows nothing about.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Address, AuthError> {
        self.verify_known(method, path_and_query, body, headers, now, |_| true)
    }

    /// Like [`RequestVerifier::verify`], but refuses with [`AuthError::UnknownSigner`] a
    /// signer for which `is_known` is false, before its nonce takes a place in the replay
    /// cache: strangers' requests then cannot fill it.
    pub fn verify_known(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        headers: &HeaderMap,
        now: u64,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<Address, AuthError> {
        let signature = parse_signature(required(headers, &SIGNATURE_HEADER, SIGNATURE)?)
            .map_err(|reason| AuthError::MalformedHeader { header: SIGNATURE, reason })?;
        let time = parse_time(required(headers, &TIME_HEADER, TIME)?)?;
        let nonce = parse_hex::<32>(required(headers, &NONCE_HEADER, NONCE)?)
            .map(B256::from)
            .map_err(|()| AuthError::MalformedHeader {
                header: NONCE,
                reason: "expected 0x followed by 64 hex digits (32 bytes)",
            })?;
        let claimed = headers
            .get(&SIGNER_HEADER)
            .map(|v| {
                parse_hex::<20>(v.as_bytes()).map(Address::from).map_err(|()| {
                    AuthError::MalformedHeader {
                        header: SIGNER,
                        reason: "expected 0x followed by 40 hex digits (an address)",
                    }
                })
            })
            .transpose()?;

        let skew = self.skew;
        if time.saturating_add(skew) < now {
            return Err(AuthError::RequestExpired { time, now, skew });
        }
        if time > now.saturating_add(skew) {
            return Err(AuthError::RequestFromFuture { time, now, skew });
        }

        let hash = self.signing_hash(method, path_and_query, body, time, nonce);
        let signer = signature
            .recover_address_from_prehash(&hash)
            .map_err(|e| AuthError::InvalidSignature(e.to_string()))?;
        if let Some(claimed) = claimed.filter(|c| *c != signer) {
            return Err(AuthError::SignerMismatch { claimed, recovered: signer });
        }
        if !is_known(signer) {
            return Err(AuthError::UnknownSigner(signer));
        }

        // Remembered while a request with this time is still accepted: until now > time + skew.
        let expires_at = time.saturating_add(skew).saturating_add(1);
        let mut replay = self.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if replay.get_mut(&(signer, nonce), now).is_some() {
            return Err(AuthError::ReplayedNonce { signer, nonce });
        }
        replay
            .insert((signer, nonce), (), expires_at, now)
            .map_err(|_| AuthError::ReplayCacheFull { capacity: replay.capacity() })?;
        Ok(signer)
    }
}

impl RequestVerifier {
    /// The EIP-712 signing hash of a request to this gatekeeper, as
    /// `Request::eip712_signing_hash` computes it (`keccak256(0x1901 ‖ domainSeparator ‖
    /// hashStruct(request))`), with the separator and the type hash hashed once and no
    /// allocation: per request, the keccak-256 of the method, of the target, of the body
    /// (a constant when there is none), of the struct's words and of the digest.
    fn signing_hash(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        time: u64,
        nonce: B256,
    ) -> B256 {
        let body_hash = if body.is_empty() { KECCAK256_EMPTY } else { keccak256(body) };
        // typeHash, then each field as one 32-byte word (strings as their keccak-256,
        // uint64 and address right-aligned).
        let mut words = [0u8; 7 * 32];
        words[..32].copy_from_slice(self.type_hash.as_slice());
        words[32..64].copy_from_slice(keccak256(method.as_bytes()).as_slice());
        words[64..96].copy_from_slice(keccak256(path_and_query.as_bytes()).as_slice());
        words[96..128].copy_from_slice(body_hash.as_slice());
        words[152..160].copy_from_slice(&time.to_be_bytes());
        words[160..192].copy_from_slice(nonce.as_slice());
        words[204..224].copy_from_slice(self.gatekeeper.as_slice());
        let mut digest = [0u8; 2 + 32 + 32];
        digest[..2].copy_from_slice(&[0x19, 0x01]);
        digest[2..34].copy_from_slice(self.separator.as_slice());
        digest[34..].copy_from_slice(keccak256(words).as_slice());
        keccak256(digest)
    }
}

fn required<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    display: &'static str,
) -> Result<&'a [u8], AuthError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(AuthError::MissingHeader(display))?;
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader { header: display, reason: "sent more than once" });
    }
    Ok(value.as_bytes())
}

fn parse_time(value: &[u8]) -> Result<u64, AuthError> {
    let malformed = |reason| AuthError::MalformedHeader { header: TIME, reason };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(malformed("expected unix seconds in decimal digits"));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("the time does not fit in 64 bits"))
}

/// `0x` followed by exactly `2 * N` hex digits (either case).
pub(crate) fn parse_hex<const N: usize>(value: &[u8]) -> Result<[u8; N], ()> {
    let digits = value.strip_prefix(b"0x").ok_or(())?;
    if digits.len() != 2 * N {
        return Err(());
    }
    hex::decode_to_array(digits).map_err(|_| ())
}

/// Half the order of secp256k1: signatures with a larger `s` are the malleated twins of
/// canonical ones (EIP-2) and are refused.
const HALF_ORDER: U256 =
    U256::from_be_slice(&hex!("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"));

/// A 65-byte `r ‖ s ‖ v` signature in `0x` hex, `v` one of 0, 1, 27, 28, `s` canonical.
pub(crate) fn parse_signature(value: &[u8]) -> Result<alloy::primitives::Signature, &'static str> {
    let bytes = parse_hex::<65>(value)
        .map_err(|()| "expected 0x followed by 130 hex digits (65 bytes: r, s, v)")?;
    let parity = match bytes[64] {
        0 | 27 => false,
        1 | 28 => true,
        _ => return Err("the recovery byte v must be 0, 1, 27 or 28"),
    };
    let signature = alloy::primitives::Signature::from_bytes_and_parity(&bytes[..64], parity);
    if signature.s() > HALF_ORDER {
        return Err("s is in the upper half of the curve order (not canonical, see EIP-2)");
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn key() -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap()
    }

    fn gatekeeper() -> Address {
        Address::repeat_byte(0x99)
    }

    #[test]
    fn typehash_is_the_one_in_the_docs() {
        assert_eq!(
            Request::eip712_encode_type(),
            "Request(string method,string pathAndQuery,bytes32 bodyHash,uint64 time,bytes32 nonce,address gatekeeper)"
        );
    }

    #[test]
    fn the_domain_has_name_version_and_chain_id_only() {
        let d = domain(1337);
        assert_eq!(d.name.as_deref(), Some("MedRec Gatekeeper"));
        assert_eq!(d.version.as_deref(), Some("1"));
        assert_eq!(d.chain_id, Some(U256::from(1337)));
        assert!(d.verifying_contract.is_none() && d.salt.is_none());
    }

    #[test]
    fn signed_headers_verify_to_the_signer() {
        let key = key();
        let nonce = B256::repeat_byte(7);
        let headers = sign_request(
            &key,
            1337,
            &Request::new("GET", "/fhir/Patient/1", b"", NOW, nonce, gatekeeper()),
        )
        .unwrap();
        assert_eq!(headers.len(), 4);
        let v = RequestVerifier::new(1337, gatekeeper());
        assert_eq!(v.verify("GET", "/fhir/Patient/1", b"", &headers, NOW + 3), Ok(key.address()));
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn the_signing_hash_is_alloys() {
        for chain_id in [1, 1337] {
            let v = RequestVerifier::new(chain_id, gatekeeper());
            for (method, path, body, time) in [
                ("GET", "/fhir/Patient/1", &b""[..], NOW),
                ("POST", "/fhir", &br#"{"resourceType":"Patient"}"#[..], u64::MAX),
                ("PUT", "/enrollments/0xab?x=%20y", &b"\x00\xff"[..], 0),
            ] {
                let nonce = keccak256(path.as_bytes());
                let expected = Request::new(method, path, body, time, nonce, gatekeeper())
                    .eip712_signing_hash(&domain(chain_id));
                assert_eq!(v.signing_hash(method, path, body, time, nonce), expected, "{path}");
            }
        }
    }

    #[test]
    fn recovery_runs_on_libsecp256k1() {
        // `recover_address_from_prehash` uses libsecp256k1 when alloy-primitives has its
        // `secp256k1` feature; this does not compile without it.
        let key = key();
        let hash = B256::repeat_byte(5);
        let sig = key.sign_hash_sync(&hash).unwrap();
        let public = sig.recover_from_prehash_secp256k1(&hash).unwrap();
        let via_secp = Address::from_raw_public_key(&public.serialize_uncompressed()[1..]);
        assert_eq!(via_secp, key.address());
        assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), key.address());
    }

    #[test]
    fn the_body_hash_of_no_body_is_keccak_of_empty() {
        let r = Request::new("GET", "/", b"", 0, B256::ZERO, Address::ZERO);
        assert_eq!(
            r.bodyHash,
            B256::from(hex!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"))
        );
    }

    #[test]
    fn high_s_and_odd_v_are_refused() {
        let key = key();
        let hash = B256::repeat_byte(3);
        let sig = key.sign_hash_sync(&hash).unwrap();
        let ok = hex::encode_prefixed(sig.as_bytes());
        assert!(parse_signature(ok.as_bytes()).is_ok());

        let n = U256::from_be_slice(&hex!(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        ));
        let twin = alloy::primitives::Signature::new(sig.r(), n - sig.s(), !sig.v());
        let twin = hex::encode_prefixed(twin.as_bytes());
        assert!(parse_signature(twin.as_bytes()).unwrap_err().contains("EIP-2"));

        let mut bad_v = sig.as_bytes();
        bad_v[64] = 37;
        assert!(parse_signature(hex::encode_prefixed(bad_v).as_bytes()).unwrap_err().contains("v"));
    }

    #[test]
    fn hex_needs_the_prefix_and_the_exact_length() {
        assert_eq!(parse_hex::<2>(b"0xabCD"), Ok([0xab, 0xcd]));
        assert!(parse_hex::<2>(b"abcd").is_err());
        assert!(parse_hex::<2>(b"0xabc").is_err());
        assert!(parse_hex::<2>(b"0xabcdef").is_err());
        assert!(parse_hex::<2>(b"0xzzzz").is_err());
    }

    #[test]
    fn time_must_be_plain_digits() {
        assert_eq!(parse_time(b"12"), Ok(12));
        for bad in [&b""[..], b"+12", b"-1", b"1.5", b" 12", b"99999999999999999999999"] {
            assert!(
                matches!(
                    parse_time(bad),
                    Err(AuthError::MalformedHeader { header: "X-MedRec-Time", .. })
                ),
                "{bad:?}"
            );
        }
    }
}
