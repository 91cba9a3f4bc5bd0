//! SMART App Launch 2.x scopes, and what a token's scopes let it do.
//!
//! A clinical scope is `patient/` or `user/`, a resource type or `*`, a dot and the
//! interactions in the order `c r u d s` (`patient/Observation.rs`); SMART v1's `read`,
//! `write` and `*` are read as `rs`, `cud` and `cruds`. Besides them the gatekeeper
//! grants `launch/patient` (a patient in context), `offline_access` and `online_access`
//! (a refresh token), `openid` (an id token) and `fhirUser` (the person's own `Patient`
//! in it, for a patient with a record here: see [`super::oidc`]). It grants nothing
//! else: not granular scopes (`…rs?category=…`), not scopes of unknown types.
//!
//! Scopes only ever **narrow** what the chain allows: a token's [`Grant`] is checked on
//! top of the requester's consent scope at every request ([`crate::access::Scope`]),
//! which is decided from the live consent index as for any other credential.

use medrec_store::fhir::{ResourceId, ResourceType};
use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// One FHIR interaction a scope may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Interaction {
    /// `c`: create.
    Create = 1,
    /// `r`: read (and version read).
    Read = 2,
    /// `u`: update.
    Update = 4,
    /// `d`: delete.
    Delete = 8,
    /// `s`: search.
    Search = 16,
}

const LETTERS: [(char, Interaction); 5] = [
    ('c', Interaction::Create),
    ('r', Interaction::Read),
    ('u', Interaction::Update),
    ('d', Interaction::Delete),
    ('s', Interaction::Search),
];

/// The interactions that only read.
pub(crate) const READS: u8 = Interaction::Read as u8 | Interaction::Search as u8;

/// Whose records a clinical scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `patient/`: the one patient in context.
    Patient,
    /// `user/`: whatever the person signed in may see.
    User,
}

/// One clinical scope: a context, a resource type (`None` for `*`) and interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clinical {
    /// `patient/` or `user/`.
    pub context: Context,
    /// The type, `None` for every type.
    pub resource: Option<ResourceType>,
    /// The interactions, a set of [`Interaction`] bits.
    pub interactions: u8,
}

impl Clinical {
    /// A clinical scope from its text; `None` when it is not one the gatekeeper grants
    /// (another kind of scope, an unknown type, a granular or malformed one).
    pub fn parse(text: &str) -> Option<Self> {
        let (context, rest) = text.split_once('/')?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            _ => return None,
        };
        let (ty, ops) = rest.split_once('.')?;
        let resource = if ty == "*" { None } else { Some(ty.parse().ok()?) };
        let interactions = match ops {
            "read" => READS,
            "write" => {
                Interaction::Create as u8 | Interaction::Update as u8 | Interaction::Delete as u8
            }
            "*" => 0x1f,
            v2 => interactions(v2)?,
        };
        Some(Self { context, resource, interactions })
    }

    /// Whether it allows `interaction` on `ty`.
    pub fn allows(&self, ty: ResourceType, interaction: Interaction) -> bool {
        self.resource.is_none_or(|r| r == ty) && self.interactions & interaction as u8 != 0
    }
}

/// `c r u d s` letters, each at most once and in that order, at least one.
fn interactions(letters: &str) -> Option<u8> {
    let mut bits = 0u8;
    let mut next = 0;
    for ch in letters.chars() {
        let at = LETTERS[next..].iter().position(|(l, _)| *l == ch)? + next;
        bits |= LETTERS[at].1 as u8;
        next = at + 1;
    }
    (bits != 0).then_some(bits)
}

impl fmt::Display for Clinical {
    /// The SMART v2 text (`patient/Observation.rs`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            Context::Patient => "patient",
            Context::User => "user",
        };
        let ty = self.resource.map_or("*", ResourceType::as_str);
        write!(f, "{context}/{ty}.")?;
        for (letter, i) in LETTERS {
            if self.interactions & i as u8 != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// The scopes an app asked for, as far as the gatekeeper can grant them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// The clinical scopes, in the order asked, without duplicates.
    pub clinical: Vec<Clinical>,
    /// `launch/patient`: a patient in context.
    pub launch_patient: bool,
    /// `offline_access`: a refresh token that outlives the session.
    pub offline: bool,
    /// `online_access`: a refresh token for the session.
    pub online: bool,
    /// `openid`: an id token.
    pub openid: bool,
    /// `fhirUser`: the person's FHIR resource in the id token.
    pub fhir_user: bool,
}

impl Requested {
    /// The scopes of a space-separated `scope` parameter (RFC 6749 §3.3); anything the
    /// gatekeeper does not grant is left out.
    pub fn parse(scope: &str) -> Self {
        let mut out = Self::default();
        for item in scope.split(' ').filter(|s| !s.is_empty()) {
            match item {
                "launch/patient" => out.launch_patient = true,
                "offline_access" => out.offline = true,
                "online_access" => out.online = true,
                "openid" => out.openid = true,
                "fhirUser" => out.fhir_user = true,
                other => {
                    if let Some(c) = Clinical::parse(other)
                        && !out.clinical.contains(&c)
                    {
                        out.clinical.push(c);
                    }
                }
            }
        }
        out
    }

    /// Whether a patient must be put in context.
    pub fn wants_patient(&self) -> bool {
        self.launch_patient || self.clinical.iter().any(|c| c.context == Context::Patient)
    }
}

/// The authorization a set of tokens comes from: revoked at once for all of them (a
/// reused code, a revoked refresh token).
#[derive(Debug, Default)]
pub struct Family {
    revoked: AtomicBool,
}

impl Family {
    /// Cuts every token of the authorization.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
    }

    /// Whether the authorization was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

/// What a SMART token may do, on top of what the chain lets its holder see.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The clinical scopes granted.
    pub clinical: Vec<Clinical>,
    /// The patient in context (`patient/` scopes reach only this compartment).
    pub patient: Option<ResourceId>,
    /// `offline_access` or `online_access` was granted.
    pub refresh: Option<&'static str>,
    /// The client the token was issued to.
    pub client_id: String,
    /// `openid` was granted: `/token` answers an id token.
    pub openid: bool,
    /// `fhirUser` was granted: the person's own `Patient` here, named in the id token.
    pub fhir_user: Option<ResourceId>,
    /// The authorization it comes from.
    pub family: Arc<Family>,
}

impl Grant {
    /// The `scope` of the token response: the clinical scopes, then `launch/patient`
    /// when a patient is in context, then the refresh scope, then `openid` and
    /// `fhirUser` when granted.
    pub fn scope_text(&self) -> String {
        let mut parts: Vec<String> = self.clinical.iter().map(ToString::to_string).collect();
        if self.patient.is_some() {
            parts.push("launch/patient".into());
        }
        parts.extend(self.refresh.map(str::to_owned));
        if self.openid {
            parts.push("openid".into());
            if self.fhir_user.is_some() {
                parts.push("fhirUser".into());
            }
        }
        parts.join(" ")
    }

    /// Whether the token may do `interaction` on `ty` in the records of `patient` (a
    /// `patient/` scope reaches only the patient in context; `None` matches no patient).
    pub fn allows(
        &self,
        ty: ResourceType,
        interaction: Interaction,
        patient: Option<&ResourceId>,
    ) -> bool {
        self.clinical.iter().any(|c| {
            c.allows(ty, interaction)
                && match c.context {
                    Context::User => true,
                    Context::Patient => patient.is_some() && patient == self.patient.as_ref(),
                }
        })
    }

    /// Whether the token may read (read or search) `ty` in `patient`'s records.
    pub fn reads(&self, ty: ResourceType, patient: Option<&ResourceId>) -> bool {
        self.allows(ty, Interaction::Read, patient) || self.allows(ty, Interaction::Search, patient)
    }

    /// Whether some scope allows `interaction` on `ty`, for some patient.
    pub fn allows_some(&self, ty: ResourceType, interaction: Interaction) -> bool {
        self.clinical.iter().any(|c| c.allows(ty, interaction))
    }

    /// Whether every type may be created and updated (a transaction or batch).
    pub fn writes_everything(&self) -> bool {
        let cu = Interaction::Create as u8 | Interaction::Update as u8;
        self.clinical.iter().any(|c| {
            c.context == Context::User && c.resource.is_none() && c.interactions & cu == cu
        })
    }

    /// Whether the authorization behind it still stands.
    pub fn is_live(&self) -> bool {
        !self.family.is_revoked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v1_scopes_parse_to_v2_text() {
        for (text, canonical) in [
            ("patient/Observation.rs", "patient/Observation.rs"),
            ("user/*.cruds", "user/*.cruds"),
            ("patient/Condition.read", "patient/Condition.rs"),
            ("user/Observation.write", "user/Observation.cud"),
            ("user/*.*", "user/*.cruds"),
            ("patient/Patient.r", "patient/Patient.r"),
        ] {
            assert_eq!(Clinical::parse(text).unwrap().to_string(), canonical, "{text}");
        }
    }

    #[test]
    fn what_is_not_granted_is_left_out() {
        for text in [
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.",
            "patient/Unknown.rs",
            "system/*.rs",
            "patient/Observation.rs?category=laboratory",
            "openid",
            "fhirUser",
        ] {
            assert!(Clinical::parse(text).is_none(), "{text}");
        }
        let r = Requested::parse(
            "openid fhirUser launch/patient offline_access patient/Observation.rs patient/Observation.rs",
        );
        assert_eq!(r.clinical.len(), 1);
        assert!(r.launch_patient && r.offline && !r.online && r.wants_patient());
        assert!(r.openid && r.fhir_user);
        assert!(!Requested::parse("patient/Observation.rs").openid);
    }

    #[test]
    fn patient_scopes_reach_only_the_patient_in_context() {
        let grant = Grant {
            clinical: vec![
                Clinical::parse("patient/Observation.rs").unwrap(),
                Clinical::parse("user/Condition.r").unwrap(),
            ],
            patient: Some("p1".parse().unwrap()),
            refresh: Some("offline_access"),
            client_id: "app".into(),
            openid: false,
            fhir_user: None,
            family: Arc::default(),
        };
        let (p1, p2): (ResourceId, ResourceId) = ("p1".parse().unwrap(), "p2".parse().unwrap());
        assert!(grant.reads(ResourceType::Observation, Some(&p1)));
        assert!(!grant.reads(ResourceType::Observation, Some(&p2)));
        assert!(grant.reads(ResourceType::Condition, Some(&p2)));
        assert!(!grant.allows(ResourceType::Condition, Interaction::Search, Some(&p2)));
        assert!(!grant.reads(ResourceType::Procedure, Some(&p1)));
        assert!(!grant.allows_some(ResourceType::Observation, Interaction::Create));
        assert!(!grant.writes_everything());
        assert_eq!(
            grant.scope_text(),
            "patient/Observation.rs user/Condition.r launch/patient offline_access"
        );
        grant.family.revoke();
        assert!(!grant.is_live());
    }
}
