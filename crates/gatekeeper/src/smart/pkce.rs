//! Proof Key for Code Exchange (RFC 7636), `S256` only: the app sends
//! `BASE64URL(SHA256(verifier))` with the authorization request and the verifier with
//! the code; a code is exchanged only when the two agree.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

/// Whether `challenge` is the shape an `S256` challenge has: 43 base64url characters
/// (32 bytes).
pub fn is_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && BASE64URL_NOPAD.decode(challenge.as_bytes()).is_ok_and(|b| b.len() == 32)
}

/// Whether `verifier` is a valid code verifier (43 to 128 unreserved characters,
/// RFC 7636 §4.1) whose `S256` transform is `challenge`.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

/// `BASE64URL(SHA256(verifier))`, the `S256` challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifies() {
        // RFC 7636, Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(is_challenge(challenge));
        assert!(verify(verifier, challenge));
        assert!(!verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx", challenge));
        assert!(!verify("short", &s256("short")), "a verifier is at least 43 characters");
        assert!(!is_challenge("plain-text-challenge"));
    }
}
