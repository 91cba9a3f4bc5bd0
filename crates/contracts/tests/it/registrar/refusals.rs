//! `Registrar`: refusals read as sentences.

use super::*;

#[test]
fn refusals_read_as_sentences_with_their_details() {
    let Cast { mut w, institution, stranger, .. } = Cast::new();
    let reg = w.reg();

    let err = w.fail(
        stranger,
        reg,
        Registrar::registerPatientCall { identity: h("x"), account: addr(21) },
    );
    let text = err.to_string();
    assert!(text.starts_with(&stranger.to_string()), "{text}");
    assert!(text.contains("is not a certified institution"), "{text}");

    let err = w.fail(
        institution,
        reg,
        Registrar::registerPatientCall { identity: h("patient"), account: addr(21) },
    );
    let text = err.to_string();
    assert!(text.contains(&h("patient").to_string()), "{text}");
    assert!(text.contains("already registered"), "{text}");

    let err = w.fail(
        stranger,
        reg,
        Registrar::updateProviderCall { endpoint: "x".into(), encryptionKey: h("k") },
    );
    assert!(err.to_string().contains(&stranger.to_string()), "{err}");
    assert!(err.to_string().contains("not a registered provider"), "{err}");

    let mut w = world(3);
    propose(&mut w, addr(1), ADMIT_RESEARCHER, addr(50));
    let text = vote_fails(&mut w, addr(1), 0).to_string();
    assert_eq!(text, format!("{} has already voted for proposal 0", addr(1)));

    let text = propose_fails(&mut w, addr(1), REMOVE_INSTITUTION, addr(9)).to_string();
    assert!(text.contains(&addr(9).to_string()), "{text}");
    assert!(text.ends_with("cannot be removed"), "{text}");
}
