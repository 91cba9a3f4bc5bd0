//! The login and consent page of `GET /authorize`, and the page that refuses a request
//! that cannot be sent back to the app. One small page, written out here; every value
//! from the request is HTML-escaped.
//!
//! The page says in words what the app asks for, then has the person's wallet sign the
//! EIP-4361 message `GET /authorize/message` writes (`window.ethereum`,
//! `personal_sign`), and posts it with the request's parameters to `POST /authorize`.
//! Without a wallet in the browser, the message can be signed elsewhere and pasted.

use super::{
    AuthorizeRequest, Requested,
    scope::{Clinical, Context, Interaction},
};
use medrec_store::fhir::ResourceType;

/// What the consent page shows.
pub(super) struct Consent<'a> {
    pub(super) request: &'a AuthorizeRequest,
    pub(super) request_id: &'a str,
    pub(super) requested: &'a Requested,
    pub(super) scope: &'a str,
    pub(super) client_id: &'a str,
    pub(super) redirect_uri: &'a str,
}

/// HTML-escapes `text` for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The records a type holds, in the words a patient uses.
fn records(ty: Option<ResourceType>) -> &'static str {
    match ty {
        None => "records of every kind",
        Some(ResourceType::Patient) => "demographics (name, birth date, gender)",
        Some(ResourceType::Observation) => "laboratory results and vital signs",
        Some(ResourceType::Condition) => "conditions and diagnoses",
        Some(ResourceType::MedicationRequest) => "prescriptions",
        Some(ResourceType::AllergyIntolerance) => "allergies",
        Some(ResourceType::Immunization) => "immunizations",
        Some(ResourceType::Procedure) => "procedures",
        Some(ResourceType::Encounter) => "visits and admissions",
        Some(ResourceType::DiagnosticReport) => "diagnostic reports",
        Some(ResourceType::DocumentReference) => "clinical documents",
    }
}

/// One scope in words: "read and search your laboratory results and vital signs
/// (Observation)".
pub(super) fn describe(c: &Clinical) -> String {
    let mut verbs = Vec::new();
    for (i, verb) in [
        (Interaction::Read, "read"),
        (Interaction::Search, "search"),
        (Interaction::Create, "add to"),
        (Interaction::Update, "change"),
        (Interaction::Delete, "delete"),
    ] {
        if c.interactions & i as u8 != 0 {
            verbs.push(verb);
        }
    }
    let verbs = match verbs.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let whose = match c.context {
        Context::Patient => "your",
        Context::User => "the",
    };
    let tail = match c.context {
        Context::Patient => "",
        Context::User => " you may see here",
    };
    let ty = c.resource.map_or("all types", ResourceType::as_str);
    format!("{verbs} {whose} {}{tail} ({ty})", records(c.resource))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}h1{font-size:1.4rem}li{margin:.3rem 0}.note{color:#555;font-size:.9rem}button{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}textarea{width:100%;font-family:monospace}details{margin-top:1.5rem}.error{color:#a00}";

/// The page that refuses an authorization request it cannot send back.
pub(super) fn refused(why: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization refused</title><style>{STYLE}</style></head>\
         <body><h1>This app cannot be authorized here</h1><p class=\"error\">{}</p>\
         <p class=\"note\">Nothing was sent to the app. If you expected this to work, tell the app's maker or your provider.</p></body></html>",
        escape(why)
    )
}

/// The consent page.
pub(super) fn consent(c: &Consent<'_>) -> String {
    let mut asks: Vec<String> =
        c.requested.clinical.iter().map(|s| format!("<li>{}</li>", escape(&describe(s)))).collect();
    if c.requested.wants_patient() {
        asks.push("<li>know which of your patient records is open</li>".into());
    }
    if c.requested.offline {
        asks.push("<li>keep this access when you are away, until you or the chain end it (offline access)</li>".into());
    } else if c.requested.online {
        asks.push("<li>keep this access while you use the app (online access)</li>".into());
    }
    let r = c.request;
    let hidden: String = [
        ("response_type", &r.response_type),
        ("client_id", &r.client_id),
        ("redirect_uri", &r.redirect_uri),
        ("scope", &r.scope),
        ("state", &r.state),
        ("aud", &r.aud),
        ("code_challenge", &r.code_challenge),
        ("code_challenge_method", &r.code_challenge_method),
        ("nonce", &r.nonce),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value
            .as_deref()
            .map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(v)))
    })
    .collect();
    let redirect_host = c
        .redirect_uri
        .split_once("://")
        .map_or(c.redirect_uri, |(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest));
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authorize {app}</title><style>{STYLE}</style></head>
<body>
<h1>The app “{app}” asks to</h1>
<ul>{asks}</ul>
<p>It can never see more than you have shared on the chain with whoever signs in: if you
revoke a grant there, the app loses it at once. It can only read: it cannot change your records.</p>
<p class="note">After you sign, you go back to {redirect_host}. Asked for: <code>{scope}</code></p>
<form id="answer" method="post" action="/authorize">
{hidden}
<input type="hidden" name="request_id" value="{request_id}">
<button type="button" id="sign">Sign with your wallet and allow</button>
<button type="submit" name="deny" value="1">Deny</button>
<p id="status" class="note"></p>
<details><summary>No wallet in this browser?</summary>
<p class="note">Get the message to sign from <code>/authorize/message?address=YOUR_ADDRESS&amp;request_id={request_id}</code>, sign it with <code>personal_sign</code> elsewhere, and paste both here.</p>
<p><label>Message<br><textarea name="message" rows="10"></textarea></label></p>
<p><label>Signature (0x…)<br><textarea name="signature" rows="2"></textarea></label></p>
<button type="submit">Allow with this signature</button>
</details>
</form>
<script>
(function () {{
  var form = document.getElementById('answer');
  var status = document.getElementById('status');
  document.getElementById('sign').addEventListener('click', async function () {{
    if (!window.ethereum) {{ status.textContent = 'No wallet found in this browser: use the form below.'; return; }}
    try {{
      var accounts = await window.ethereum.request({{ method: 'eth_requestAccounts' }});
      var address = accounts[0];
      var res = await fetch('/authorize/message?address=' + encodeURIComponent(address) + '&request_id={request_id}');
      if (!res.ok) {{ status.textContent = await res.text(); return; }}
      var message = await res.text();
      var hex = '0x' + Array.from(new TextEncoder().encode(message)).map(function (b) {{ return b.toString(16).padStart(2, '0'); }}).join('');
      var signature = await window.ethereum.request({{ method: 'personal_sign', params: [hex, address] }});
      form.elements['message'].value = message;
      form.elements['signature'].value = signature;
      form.submit();
    }} catch (e) {{ status.textContent = 'The wallet did not sign: ' + (e && e.message ? e.message : e); }}
  }});
}})();
</script>
</body></html>"#,
        app = escape(c.client_id),
        asks = asks.join(""),
        redirect_host = escape(redirect_host),
        scope = escape(c.scope),
        request_id = escape(c.request_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_said_in_words() {
        let c = Clinical::parse("patient/Observation.rs").unwrap();
        assert_eq!(
            describe(&c),
            "read and search your laboratory results and vital signs (Observation)"
        );
        let c = Clinical::parse("user/*.cruds").unwrap();
        assert_eq!(
            describe(&c),
            "read, search, add to, change and delete the records of every kind you may see here (all types)"
        );
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
