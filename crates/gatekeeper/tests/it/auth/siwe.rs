//! Sign-In with Ethereum through `SiweAuthenticator::sign_in`, with a fixed clock.

use super::{CHAIN_ID, Msg, NOW, alice, mallory, siwe_config};
use alloy::{hex, signers::SignerSync};
use medrec_gatekeeper::auth::{AuthError, SiweAuthenticator, SiweConfig};
use std::time::Duration;

fn authenticator() -> SiweAuthenticator {
    SiweAuthenticator::new(siwe_config())
}

/// EIP-191 `personal_sign` of `text` by Alice, in 0x hex.
fn alice_signs(text: &str) -> String {
    hex::encode_prefixed(alice().sign_message_sync(text.as_bytes()).unwrap().as_bytes())
}

/// A nonce from `auth` and a message by Alice with it.
fn message(auth: &SiweAuthenticator) -> Msg {
    Msg::new(alice().address(), &auth.issue_nonce(NOW).unwrap())
}

#[test]
fn a_signed_message_yields_a_token_for_its_address() {
    let auth = authenticator();
    let text = message(&auth).text();
    let token = auth.sign_in(&text, &alice_signs(&text), NOW + 5).unwrap();
    assert_eq!(token.address(), alice().address());
    assert_eq!(token.expires_in(), 15 * 60);
    assert_eq!(token.expires_at(), NOW + 5 + 15 * 60);
    assert!(token.access_token().len() >= 32, "at least 128 bits");
    assert_eq!(auth.resolve(token.access_token(), NOW + 6), Some(alice().address()));
}

#[test]
fn the_token_expires() {
    let auth = authenticator();
    let text = message(&auth).text();
    let token = auth.sign_in(&text, &alice_signs(&text), NOW).unwrap();
    let end = NOW + 15 * 60;
    assert_eq!(auth.resolve(token.access_token(), end - 1), Some(alice().address()));
    assert_eq!(auth.resolve(token.access_token(), end), None);
    assert!(auth.tokens().is_empty(), "the expired token was purged");
}

#[test]
fn the_token_never_outlives_the_message() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.expiration = Some(NOW + 120);
    let text = msg.text();
    let token = auth.sign_in(&text, &alice_signs(&text), NOW).unwrap();
    assert_eq!(token.expires_at(), NOW + 120);
    assert_eq!(auth.resolve(token.access_token(), NOW + 119), Some(alice().address()));
    assert_eq!(auth.resolve(token.access_token(), NOW + 120), None);
}

#[test]
fn the_token_lifetime_is_configurable() {
    let auth = SiweAuthenticator::new(SiweConfig {
        token_lifetime: Duration::from_secs(60),
        ..siwe_config()
    });
    let text = message(&auth).text();
    assert_eq!(auth.sign_in(&text, &alice_signs(&text), NOW).unwrap().expires_in(), 60);
}

#[test]
fn a_message_for_another_domain_is_refused() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.domain = "evil.example.org".to_owned();
    let text = msg.text();
    assert_eq!(
        auth.sign_in(&text, &alice_signs(&text), NOW),
        Err(AuthError::WrongDomain {
            expected: "gatekeeper.example.org".to_owned(),
            found: "evil.example.org".to_owned()
        })
    );
    // Nor does a port or user info make it ours.
    for domain in ["gatekeeper.example.org:8443", "alice@gatekeeper.example.org"] {
        msg.domain = domain.to_owned();
        let text = msg.text();
        assert!(
            matches!(
                auth.sign_in(&text, &alice_signs(&text), NOW),
                Err(AuthError::WrongDomain { .. })
            ),
            "{domain}"
        );
    }
}

#[test]
fn a_message_for_another_chain_is_refused() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.chain_id = 1;
    let text = msg.text();
    assert_eq!(
        auth.sign_in(&text, &alice_signs(&text), NOW),
        Err(AuthError::WrongChain { expected: CHAIN_ID, found: 1 })
    );
}

#[test]
fn a_nonce_not_issued_here_is_refused() {
    let auth = authenticator();
    let other = SiweAuthenticator::new(siwe_config());
    let text = Msg::new(alice().address(), &other.issue_nonce(NOW).unwrap()).text();
    assert_eq!(auth.sign_in(&text, &alice_signs(&text), NOW), Err(AuthError::UnknownNonce));
    let text = Msg::new(alice().address(), "aaaaaaaaaaaaaaaa").text();
    assert_eq!(auth.sign_in(&text, &alice_signs(&text), NOW), Err(AuthError::UnknownNonce));
}

#[test]
fn an_address_the_gatekeeper_does_not_know_gets_no_token() {
    let auth = authenticator();
    let text = message(&auth).text();
    let sig = alice_signs(&text);
    let stranger = |a| a != alice().address();
    assert_eq!(
        auth.sign_in_known(&text, &sig, NOW, stranger),
        Err(AuthError::UnknownSigner(alice().address()))
    );
    assert_eq!(auth.tokens().len(), 0, "no token was stored for the stranger");
    // The nonce was not used up: once the chain names Alice, the same message signs in.
    let token = auth.sign_in_known(&text, &sig, NOW, |_| true).unwrap();
    assert_eq!(token.address(), alice().address());
}

#[test]
fn a_reused_nonce_is_refused() {
    let auth = authenticator();
    let text = message(&auth).text();
    let sig = alice_signs(&text);
    assert!(auth.sign_in(&text, &sig, NOW).is_ok());
    assert_eq!(auth.sign_in(&text, &sig, NOW + 1), Err(AuthError::NonceAlreadyUsed));
}

#[test]
fn an_expired_nonce_is_refused() {
    let auth = authenticator();
    let nonce = auth.issue_nonce(NOW).unwrap();
    let mut msg = Msg::new(alice().address(), &nonce);
    msg.issued_at = NOW + 300;
    let text = msg.text();
    assert_eq!(auth.sign_in(&text, &alice_signs(&text), NOW + 300), Err(AuthError::UnknownNonce));
}

#[test]
fn an_expired_message_is_refused() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.expiration = Some(NOW + 60);
    let text = msg.text();
    assert_eq!(
        auth.sign_in(&text, &alice_signs(&text), NOW + 60),
        Err(AuthError::MessageExpired { expired_at: "2025-06-15T15:07:40Z".to_owned() })
    );
    // The refusal did not use the nonce up: it is still good for a fresh message.
    msg.expiration = None;
    let text = msg.text();
    assert!(auth.sign_in(&text, &alice_signs(&text), NOW + 60).is_ok());
}

#[test]
fn a_message_from_the_future_is_refused() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.issued_at = NOW + 31;
    let text = msg.text();
    assert!(matches!(
        auth.sign_in(&text, &alice_signs(&text), NOW),
        Err(AuthError::MessageIssuedInFuture { .. })
    ));
    // Within the skew it is fine.
    msg.issued_at = NOW + 30;
    let text = msg.text();
    assert!(auth.sign_in(&text, &alice_signs(&text), NOW).is_ok());
}

#[test]
fn a_message_not_yet_valid_is_refused() {
    let auth = authenticator();
    let mut msg = message(&auth);
    msg.not_before = Some(NOW + 3600);
    let text = msg.text();
    assert_eq!(
        auth.sign_in(&text, &alice_signs(&text), NOW),
        Err(AuthError::MessageNotYetValid { not_before: "2025-06-15T16:06:40Z".to_owned() })
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let auth = authenticator();
    let text = message(&auth).text();
    let sig =
        hex::encode_prefixed(mallory().sign_message_sync(text.as_bytes()).unwrap().as_bytes());
    assert_eq!(
        auth.sign_in(&text, &sig, NOW),
        Err(AuthError::SignatureMismatch {
            address: alice().address(),
            recovered: mallory().address()
        })
    );
    // The failed attempt left the nonce usable by Alice.
    assert!(auth.sign_in(&text, &alice_signs(&text), NOW).is_ok());
}

#[test]
fn a_signature_over_another_text_is_refused() {
    let auth = authenticator();
    let text = message(&auth).text();
    let sig = alice_signs(&text.replace("read your records", "read everyone's records"));
    assert!(matches!(auth.sign_in(&text, &sig, NOW), Err(AuthError::SignatureMismatch { .. })));
}

#[test]
fn a_malformed_message_is_refused() {
    let auth = authenticator();
    let good = message(&auth).text();
    let lower = good.replace(
        &alice().address().to_checksum(None),
        &alice().address().to_string().to_lowercase(),
    );
    for text in [
        "hello".to_owned(),
        String::new(),
        good.replace("Version: 1", "Version: 2"),
        good.replace("Chain ID: 1337", "Chain ID: many"),
        good.replace("Issued At: ", "Issued At: yesterday "),
        lower,
        format!("{good}\nsomething else"),
        "x".repeat(9000),
    ] {
        assert!(
            matches!(
                auth.sign_in(&text, &alice_signs(&text), NOW),
                Err(AuthError::MalformedMessage(_))
            ),
            "{text:?}"
        );
    }
}

#[test]
fn a_malformed_signature_is_refused() {
    let auth = authenticator();
    let text = message(&auth).text();
    let sig = alice_signs(&text);
    for bad in ["", "0x", "0x1234", sig.trim_start_matches("0x"), &format!("{sig}00")] {
        assert!(
            matches!(auth.sign_in(&text, bad, NOW), Err(AuthError::MalformedSignature(_))),
            "{bad}"
        );
    }
}
