//! SMART App Launch 2.x, standalone launch, in process: discovery, the consent page and
//! its answer signed with the fixture's dev keys (Sign-In with Ethereum), the token
//! endpoint with PKCE, refresh and revocation, every OAuth error case, and scopes that
//! only narrow what the chain allows.

use crate::{
    client::{Answer, As},
    fhir::records,
    fixture::Fixture,
};
use alloy::signers::{SignerSync, local::PrivateKeySigner};
use axum::{
    body::Body,
    http::{Request as HttpRequest, header},
};
use medrec_gatekeeper::smart::{AuthorizeRequest, pkce};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use std::collections::HashMap;

/// The test app, registered with the fixture's gatekeeper.
pub(crate) const CLIENT_REDIRECT: &str = "lab-app=https://app.example/callback";
const CLIENT: &str = "lab-app";
const REDIRECT: &str = "https://app.example/callback";
/// The FHIR base the in-process router sees (no `Host` header: `localhost`).
const AUD: &str = "http://localhost/fhir";
const VERIFIER: &str = "the-app-keeps-this-verifier-secret-0123456789-abcdefghij";

/// An authorization request of the test app for `scope`.
fn request(scope: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(CLIENT.into()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some(scope.into()),
        state: Some("xyz-state".into()),
        aud: Some(AUD.into()),
        code_challenge: Some(pkce::s256(VERIFIER)),
        code_challenge_method: Some("S256".into()),
        nonce: None,
    }
}

/// The request's parameters as a query string or form.
fn form(r: &AuthorizeRequest, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", &r.response_type),
        ("client_id", &r.client_id),
        ("redirect_uri", &r.redirect_uri),
        ("scope", &r.scope),
        ("state", &r.state),
        ("aud", &r.aud),
        ("code_challenge", &r.code_challenge),
        ("code_challenge_method", &r.code_challenge_method),
        ("nonce", &r.nonce),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish()
}

async fn post_form(f: &Fixture, path: &str, body: String) -> Answer {
    let request = HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    f.client.call(request).await
}

/// The parameters of the redirect in a 302's `Location` (asserts it goes to the app).
fn redirected(a: &Answer) -> HashMap<String, String> {
    assert_eq!(a.status, 302, "{}", a.text);
    let location = a.header("location").unwrap();
    let query = location.strip_prefix(&format!("{REDIRECT}?")).expect("back to the app");
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// The message the page has `key` sign for `r`, and the signature.
async fn signed(f: &Fixture, r: &AuthorizeRequest, key: &PrivateKeySigner) -> (String, String) {
    let path =
        format!("/authorize/message?address={}&request_id={}", key.address(), r.request_id());
    let message = f.client.get(&path, &As::Nobody).await;
    assert_eq!(message.status, 200, "{}", message.text);
    let signature = key.sign_message_sync(message.text.as_bytes()).unwrap().to_string();
    (message.text, signature)
}

/// Dev account `who` signs and allows `r` on the page: what `POST /authorize` answers.
async fn allow(f: &Fixture, r: &AuthorizeRequest, who: usize) -> Answer {
    let (message, signature) = signed(f, r, &f.signer(who)).await;
    post_form(f, "/authorize", form(r, &[("message", &message), ("signature", &signature)])).await
}

/// A code for dev account `who`'s authorization of `scope`.
async fn code(f: &Fixture, scope: &str, who: usize) -> String {
    code_for(f, &request(scope), who).await
}

/// A code for dev account `who`'s authorization of `r`.
async fn code_for(f: &Fixture, r: &AuthorizeRequest, who: usize) -> String {
    let back = redirected(&allow(f, r, who).await);
    assert_eq!(back["state"], "xyz-state");
    back.get("code").unwrap_or_else(|| panic!("no code: {back:?}")).clone()
}

/// `POST /token` exchanging `code`.
async fn exchange(f: &Fixture, code: &str, verifier: &str, redirect: &str) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_verifier", verifier)
        .append_pair("client_id", CLIENT)
        .finish();
    post_form(f, "/token", body).await
}

/// The token response for dev account `who`'s authorization of `scope`.
async fn token(f: &Fixture, scope: &str, who: usize) -> serde_json::Value {
    let code = code(f, scope, who).await;
    let answer = exchange(f, &code, VERIFIER, REDIRECT).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    answer.body
}

fn bearer(token: &serde_json::Value) -> As {
    As::Authorization(format!("Bearer {}", token["access_token"].as_str().unwrap()))
}

async fn refresh(f: &Fixture, refresh_token: &str) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .append_pair("client_id", CLIENT)
        .finish();
    post_form(f, "/token", body).await
}

/// The OAuth error of a token endpoint answer.
fn oauth_error(a: &Answer) -> &str {
    assert!(a.body.get("access_token").is_none(), "no token with an error: {}", a.text);
    a.body["error"].as_str().unwrap_or_else(|| panic!("not an OAuth error: {}", a.text))
}

#[tokio::test]
async fn discovery_names_the_endpoints_and_capabilities() {
    let f = Fixture::new(records()).await;
    let a = f.client.get("/fhir/.well-known/smart-configuration", &As::Nobody).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let c = &a.body;
    assert_eq!(c["authorization_endpoint"], "http://localhost/authorize");
    assert_eq!(c["token_endpoint"], "http://localhost/token");
    assert_eq!(c["revocation_endpoint"], "http://localhost/revoke");
    assert_eq!(c["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(c["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        c["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    for capability in [
        "launch-standalone",
        "client-public",
        "context-standalone-patient",
        "permission-v2",
        "permission-patient",
        "permission-user",
        "permission-offline",
    ] {
        assert!(c["capabilities"].as_array().unwrap().iter().any(|v| v == capability));
    }
    assert!(
        c["scopes_supported"].as_array().unwrap().iter().any(|s| s == "patient/Observation.rs")
    );

    let meta = f.client.get("/fhir/metadata", &As::Nobody).await;
    let security = &meta.body["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = &security["extension"][0];
    assert_eq!(
        uris["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(uris["extension"][0]["valueUri"], "http://localhost/authorize");
}

#[tokio::test]
async fn the_patient_authorizes_an_app_that_reads_observations_only() {
    let f = Fixture::new(records()).await;
    let scope = "launch/patient openid fhirUser offline_access patient/Observation.rs";
    // The page says in words what the app asks for.
    let page =
        f.client.get(&format!("/authorize?{}", form(&request(scope), &[])), &As::Nobody).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("read and search your laboratory results and vital signs (Observation)")
    );
    assert!(page.text.contains("window.ethereum") && page.text.contains("personal_sign"));
    assert!(page.text.contains(&request(scope).request_id()));

    let t = token(&f, scope, PATIENT).await;
    assert_eq!(t["token_type"], "Bearer");
    // Its scopes do not reach MedRec's Consent, AuditEvent and Provenance views.
    for view in ["/fhir/Consent", "/fhir/AuditEvent", "/fhir/Provenance"] {
        assert_eq!(f.client.get(view, &bearer(&t)).await.status, 403, "{view}");
    }
    assert_eq!(t["patient"], "p1");
    assert_eq!(t["scope"], "patient/Observation.rs launch/patient offline_access openid fhirUser");
    assert!(t["expires_in"].as_u64().unwrap() > 0);
    let app = bearer(&t);

    // Observations: read and searched, every one of the patient's.
    assert_eq!(f.client.get("/fhir/Observation/a2", &app).await.status, 200);
    let mut ids = f.client.get("/fhir/Observation", &app).await.ids();
    ids.sort();
    assert_eq!(ids, ["a1", "a2", "a3"]);
    // Conditions: consent allows the patient, the token does not.
    let c = f.client.get("/fhir/Condition/c1", &app).await;
    assert_eq!(c.status, 403, "{}", c.text);
    assert!(c.header("www-authenticate").unwrap().contains("insufficient_scope"));
    assert_eq!(f.client.get("/fhir/Condition", &app).await.status, 403);
    assert_eq!(f.get("/fhir/Condition/c1", PATIENT).await.status, 200, "the patient's own key may");
    // $everything and includes stay within the token's types.
    let everything = f.client.get("/fhir/Patient/p1/$everything", &app).await;
    assert_eq!(everything.status, 403, "no search on Patient: {}", everything.text);
    let with_patient = f.client.get("/fhir/Observation?_include=Observation:patient", &app).await;
    assert!(with_patient.ids().iter().all(|id| id.starts_with('a')), "{}", with_patient.text);
    // Writes, and routes beyond the FHIR API, are refused.
    let write = f
        .client
        .json(
            "POST",
            "/fhir/Observation",
            &serde_json::json!({"resourceType": "Observation"}),
            &app,
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(f.client.get("/audit", &app).await.status, 403);
    assert_eq!(f.client.get(&f.pointer(0), &app).await.status, 403);

    // Refresh: a new access token with the same grant.
    let refresh_token = t["refresh_token"].as_str().unwrap();
    let again = refresh(&f, refresh_token).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["scope"], t["scope"]);
    let second = bearer(&again.body);
    assert_eq!(f.client.get("/fhir/Observation/a1", &second).await.status, 200);

    // Revoking the refresh token (RFC 7009) cuts every access token of the authorization.
    let body = format!("token={refresh_token}&token_type_hint=refresh_token");
    assert_eq!(post_form(&f, "/revoke", body).await.status, 200);
    assert_eq!(f.client.get("/fhir/Observation/a1", &app).await.status, 401);
    assert_eq!(f.client.get("/fhir/Observation/a1", &second).await.status, 401);
    assert_eq!(oauth_error(&refresh(&f, refresh_token).await), "invalid_grant");
    assert_eq!(post_form(&f, "/revoke", "token=unknown".into()).await.status, 200);
}

#[tokio::test]
async fn an_unknown_client_or_redirect_is_refused_without_redirecting() {
    let f = Fixture::new(records()).await;
    let mut r = request("patient/Observation.rs");
    r.client_id = Some("evil-app".into());
    let a = f.client.get(&format!("/authorize?{}", form(&r, &[])), &As::Nobody).await;
    assert_eq!(a.status, 400);
    assert!(a.header("location").is_none());
    assert!(a.text.contains("not registered"));

    let mut r = request("patient/Observation.rs");
    r.redirect_uri = Some("https://evil.example/callback".into());
    let a = f.client.get(&format!("/authorize?{}", form(&r, &[])), &As::Nobody).await;
    assert_eq!(a.status, 400);
    assert!(a.header("location").is_none());
    // Nor does a signed answer get one there.
    let a = allow(&f, &r, PATIENT).await;
    assert_eq!(a.status, 400);
    assert!(a.header("location").is_none());
}

#[tokio::test]
async fn bad_authorization_requests_go_back_to_the_app_with_the_spec_error() {
    let f = Fixture::new(records()).await;
    let get = |r: AuthorizeRequest| {
        let f = &f;
        async move {
            redirected(&f.client.get(&format!("/authorize?{}", form(&r, &[])), &As::Nobody).await)
        }
    };
    type Change = Box<dyn Fn(&mut AuthorizeRequest)>;
    let cases: Vec<(&str, Change)> = vec![
        ("unsupported_response_type", Box::new(|r| r.response_type = Some("token".into()))),
        ("invalid_request", Box::new(|r| r.code_challenge = None)),
        ("invalid_request", Box::new(|r| r.code_challenge_method = Some("plain".into()))),
        ("invalid_request", Box::new(|r| r.aud = Some("https://other.example/fhir".into()))),
        ("invalid_scope", Box::new(|r| r.scope = Some("openid fhirUser".into()))),
    ];
    for (error, change) in cases {
        let mut r = request("patient/Observation.rs");
        change(&mut r);
        let back = get(r).await;
        assert_eq!(back["error"], error, "{back:?}");
        assert_eq!(back["state"], "xyz-state");
        assert!(!back.contains_key("code"));
    }

    // The person declines.
    let r = request("patient/Observation.rs");
    let back = redirected(&post_form(&f, "/authorize", form(&r, &[("deny", "1")])).await);
    assert_eq!(back["error"], "access_denied");
    // A signature made for another request serves not this one.
    let other = request("patient/*.rs");
    let (message, signature) = signed(&f, &other, &f.signer(PATIENT)).await;
    let a =
        post_form(&f, "/authorize", form(&r, &[("message", &message), ("signature", &signature)]))
            .await;
    assert_eq!(redirected(&a)["error"], "access_denied");
    // Nor does a stranger the chain does not know get a code.
    assert_eq!(redirected(&allow(&f, &r, STRANGER).await)["error"], "access_denied");
}

#[tokio::test]
async fn every_token_error_gives_the_spec_error_and_no_token() {
    let f = Fixture::new(records()).await;
    let scope = "patient/Observation.rs";

    let c = code(&f, scope, PATIENT).await;
    let bad =
        exchange(&f, &c, "a-wrong-verifier-of-enough-length-0123456789-abcdefghij", REDIRECT).await;
    assert_eq!((bad.status, oauth_error(&bad)), (400, "invalid_grant"));
    assert_eq!(
        oauth_error(&exchange(&f, &c, VERIFIER, REDIRECT).await),
        "invalid_grant",
        "a code is used up by its first presentation"
    );

    let c = code(&f, scope, PATIENT).await;
    let wrong = exchange(&f, &c, VERIFIER, "https://app.example/other").await;
    assert_eq!(oauth_error(&wrong), "invalid_grant");

    // A code presented twice: refused, and the token issued from it is revoked.
    let c = code(&f, scope, PATIENT).await;
    let first = exchange(&f, &c, VERIFIER, REDIRECT).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let app = bearer(&first.body);
    assert_eq!(f.client.get("/fhir/Observation/a1", &app).await.status, 200);
    assert_eq!(oauth_error(&exchange(&f, &c, VERIFIER, REDIRECT).await), "invalid_grant");
    assert_eq!(f.client.get("/fhir/Observation/a1", &app).await.status, 401);

    let c = code(&f, scope, PATIENT).await;
    let body = format!(
        "grant_type=authorization_code&code={c}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}&client_id=evil-app"
    );
    let unknown = post_form(&f, "/token", body).await;
    assert_eq!((unknown.status, oauth_error(&unknown)), (401, "invalid_client"));
    let body = format!("grant_type=password&client_id={CLIENT}");
    assert_eq!(oauth_error(&post_form(&f, "/token", body).await), "unsupported_grant_type");
    let body = format!(
        "grant_type=authorization_code&code={c}&redirect_uri={REDIRECT}&client_id={CLIENT}"
    );
    assert_eq!(oauth_error(&post_form(&f, "/token", body).await), "invalid_request", "no verifier");
    assert_eq!(
        oauth_error(&exchange(&f, "0".repeat(64).as_str(), VERIFIER, REDIRECT).await),
        "invalid_grant"
    );
}

#[tokio::test]
async fn scopes_beyond_consent_are_narrowed_or_refused() {
    let f = Fixture::new(records()).await;
    // The viewer was granted laboratory Observations only: Conditions are cut.
    let t = token(&f, "patient/Condition.rs patient/Observation.rs", VIEWER).await;
    assert_eq!(t["scope"], "patient/Observation.rs launch/patient");
    assert_eq!(t["patient"], "p1");
    let app = bearer(&t);
    assert_eq!(f.client.get("/fhir/Observation", &app).await.ids().len(), 2, "laboratory only");
    assert_eq!(
        f.client.get("/fhir/Observation/a2", &app).await.status,
        404,
        "consent still decides"
    );
    assert_eq!(f.client.get("/fhir/Condition/c1", &app).await.status, 403);
    // Nothing left: refused.
    let back = redirected(&allow(&f, &request("user/Condition.rs"), VIEWER).await);
    assert_eq!(back["error"], "invalid_scope");
    // Writes are narrowed to reads for a patient.
    let t = token(&f, "patient/Observation.cruds", PATIENT).await;
    assert_eq!(t["scope"], "patient/Observation.rs launch/patient");
    assert!(t.get("refresh_token").is_none(), "no refresh without offline_access or online_access");
}

#[tokio::test]
async fn a_viewers_app_reads_what_was_shared_and_loses_it_with_the_grant() {
    let mut f = Fixture::new(records()).await;
    let t = token(&f, "user/Observation.rs offline_access", VIEWER).await;
    assert_eq!(t["scope"], "user/Observation.rs offline_access");
    assert!(t.get("patient").is_none());
    let app = bearer(&t);
    assert_eq!(f.client.get("/fhir/Observation/a1", &app).await.status, 200);
    assert_eq!(
        f.client.get("/fhir/Observation/a2", &app).await.status,
        404,
        "vital signs were not shared"
    );

    // The patient revokes the grant on chain: the token stops at the next block.
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let after = f.client.get("/fhir/Observation/a1", &app).await;
    assert_eq!(after.status, 401, "{}", after.text);
    let again = refresh(&f, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(oauth_error(&again), "invalid_grant");
    // A new authorization is refused too: nothing is shared any more.
    assert_eq!(
        redirected(&allow(&f, &request("user/Observation.rs"), VIEWER).await)["error"],
        "access_denied"
    );
}

#[tokio::test]
async fn the_provider_may_write_with_a_user_scope() {
    let f = Fixture::new(records()).await;
    let t = token(&f, "user/*.cruds patient/Observation.rs", PROVIDER).await;
    assert_eq!(t["scope"], "user/*.cruds", "no patient context for the provider");
    let app = bearer(&t);
    let created = f
        .client
        .json(
            "POST",
            "/fhir/Condition",
            &serde_json::json!({"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}),
            &app,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let t = token(&f, "user/Observation.rs", PROVIDER).await;
    let reader = bearer(&t);
    assert_eq!(f.client.get("/fhir/Condition/c1", &reader).await.status, 403);
    let mut ids = f.client.get("/fhir/Observation", &reader).await.ids();
    ids.sort();
    assert_eq!(ids, ["a1", "a2", "a3", "b1"]);
}

/// What a browser does that a form posted by a test does not (found by SMART's own JS
/// client in Chromium, `fhir-clients/`): the consent page lets its form's answer
/// redirect to the app, a form's line breaks arrive as CRLF, and a public app refreshes
/// without its client id.
#[tokio::test]
async fn a_browser_completes_the_launch_and_a_public_app_refreshes_without_its_id() {
    let f = Fixture::new(records()).await;
    let r = request("patient/Observation.rs offline_access");
    // The page's Content-Security-Policy lets the form's redirect reach the app's origin
    // (browsers check form-action against redirects), and nothing else.
    let page = f.client.get(&format!("/authorize?{}", form(&r, &[])), &As::Nobody).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csp = page.header("content-security-policy").expect("a CSP");
    let app_origin = REDIRECT.split('/').take(3).collect::<Vec<_>>().join("/");
    assert!(csp.contains(&format!("form-action 'self' {app_origin};")), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The signed message posted with CRLF line breaks, as a browser sends a textarea.
    let (message, signature) = signed(&f, &r, &f.signer(PATIENT)).await;
    let crlf = message.replace('\n', "\r\n");
    let answer =
        post_form(&f, "/authorize", form(&r, &[("message", &crlf), ("signature", &signature)]))
            .await;
    let back = redirected(&answer);
    let code = back.get("code").unwrap_or_else(|| panic!("no code: {back:?}"));
    let tokens = exchange(&f, code, VERIFIER, REDIRECT).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    // A refresh without client_id: the refresh token names its client.
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", tokens.body["refresh_token"].as_str().unwrap())
        .finish();
    let refreshed = post_form(&f, "/token", body).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(refreshed.body["access_token"].is_string());
    // Without client_id and without a refresh token of ours: still refused.
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", "not-a-token")
        .finish();
    let refused = post_form(&f, "/token", body).await;
    assert_eq!(oauth_error(&refused), "invalid_request");
}

/// The header and claims of `id_token`, after checking its ES256 signature against the
/// gatekeeper's JWKS (found from the discovery document, as an app would).
async fn verified(f: &Fixture, id_token: &str) -> (serde_json::Value, serde_json::Value) {
    use data_encoding::BASE64URL_NOPAD as B64;
    use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
    let config = f.client.get("/fhir/.well-known/smart-configuration", &As::Nobody).await;
    let jwks_uri = config.body["jwks_uri"].as_str().unwrap();
    let path = jwks_uri.strip_prefix("http://localhost").expect("on this server");
    let jwks = f.client.get(path, &As::Nobody).await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    let parts: Vec<&str> = id_token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let json = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&B64.decode(p.as_bytes()).unwrap()).unwrap()
    };
    let (header, claims) = (json(parts[0]), json(parts[1]));
    assert_eq!(header["alg"], "ES256");
    let keys = jwks.body["keys"].as_array().unwrap();
    let jwk = keys.iter().find(|k| k["kid"] == header["kid"]).expect("the kid is in the JWKS");
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")));
    let coord = |k: &str| B64.decode(jwk[k].as_str().unwrap().as_bytes()).unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        coord("x").as_slice().into(),
        coord("y").as_slice().into(),
        false,
    );
    let key = VerifyingKey::from_encoded_point(&point).unwrap();
    let signature = Signature::from_slice(&B64.decode(parts[2].as_bytes()).unwrap()).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    key.verify(input.as_bytes(), &signature).expect("the id token verifies against the JWKS");
    (header, claims)
}

#[tokio::test]
async fn openid_gives_an_id_token_that_verifies_against_the_jwks() {
    let f = Fixture::new(records()).await;
    // Discovery names the key and the capability; OpenID discovery sits at the issuer.
    let c = f.client.get("/fhir/.well-known/smart-configuration", &As::Nobody).await.body;
    assert_eq!(c["jwks_uri"], "http://localhost/.well-known/jwks.json");
    assert_eq!(c["issuer"], AUD);
    assert!(c["capabilities"].as_array().unwrap().iter().any(|v| v == "sso-openid-connect"));
    for s in ["openid", "fhirUser"] {
        assert!(c["scopes_supported"].as_array().unwrap().iter().any(|v| v == s), "{s}");
    }
    let o = f.client.get("/fhir/.well-known/openid-configuration", &As::Nobody).await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["issuer"], AUD);
    assert_eq!(o.body["jwks_uri"], c["jwks_uri"]);
    assert_eq!(o.body["token_endpoint"], "http://localhost/token");
    assert_eq!(o.body["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));

    // The patient's app asks openid fhirUser with a nonce.
    let mut r = request("launch/patient openid fhirUser patient/Observation.rs offline_access");
    r.nonce = Some("n-0S6_WzA2Mj".into());
    let code = code_for(&f, &r, PATIENT).await;
    let answer = exchange(&f, &code, VERIFIER, REDIRECT).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let t = answer.body;
    assert!(t["scope"].as_str().unwrap().ends_with("openid fhirUser"), "{}", t["scope"]);
    let (_, claims) = verified(&f, t["id_token"].as_str().expect("an id_token")).await;
    assert_eq!(claims["iss"], AUD);
    assert_eq!(claims["sub"], f.signer(PATIENT).address().to_checksum(None));
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert!(exp > iat && exp - iat == t["expires_in"].as_u64().unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(iat.abs_diff(now) < 120, "iat {iat} is now ({now})");
    // fhirUser: the patient's own Patient, which the FHIR base resolves for them.
    assert_eq!(claims["fhirUser"], "http://localhost/fhir/Patient/p1");
    let own = f.get("/fhir/Patient/p1", PATIENT).await;
    assert_eq!(own.status, 200, "{}", own.text);

    // A refresh brings a new id token, without the nonce of the authorization.
    let again = refresh(&f, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let (_, claims) = verified(&f, again.body["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], f.signer(PATIENT).address().to_checksum(None));
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn no_id_token_without_openid_and_no_fhir_user_for_a_viewer() {
    let f = Fixture::new(records()).await;
    // fhirUser alone is not openid: no id token, and neither is granted.
    let t = token(&f, "launch/patient fhirUser patient/Observation.rs", PATIENT).await;
    assert!(t.get("id_token").is_none(), "{t}");
    assert_eq!(t["scope"], "patient/Observation.rs launch/patient");
    // openid without a nonce: an id token without one, and without fhirUser.
    let t = token(&f, "openid patient/Observation.rs", PATIENT).await;
    let (_, claims) = verified(&f, t["id_token"].as_str().unwrap()).await;
    assert!(claims.get("nonce").is_none() && claims.get("fhirUser").is_none(), "{claims}");
    assert_eq!(t["scope"], "patient/Observation.rs launch/patient openid");
    // A viewer has no resource here that stands for them: sub only, fhirUser not granted.
    let t = token(&f, "openid fhirUser user/Observation.rs", VIEWER).await;
    assert_eq!(t["scope"], "user/Observation.rs openid");
    let (_, claims) = verified(&f, t["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], f.signer(VIEWER).address().to_checksum(None));
    assert!(claims.get("fhirUser").is_none(), "{claims}");
    // A nonce that is no nonce goes back to the app.
    let mut r = request("openid patient/Observation.rs");
    r.nonce = Some("x".repeat(600));
    assert_eq!(redirected(&allow(&f, &r, PATIENT).await)["error"], "invalid_request");
}
