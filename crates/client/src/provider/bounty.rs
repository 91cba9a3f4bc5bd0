//! The bounty query that every pointer change carries: given as text or by the name of
//! an offer in the provider's research policy, resolved to its canonical text (relative
//! windows such as `date in last 7 days` become dates, as of today, UTC), published at
//! the gatekeeper, and committed to on chain.

use super::state::POLICY_FILE;
use crate::error::{Context as _, Error, Result, bail, ensure};
use alloy::primitives::B256;
use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
use medrec_research::{policy::Policy, query::BountyQuery};
use std::path::{Path, PathBuf};

/// How the bounty query is chosen.
#[derive(Debug, Clone, Default)]
pub struct BountyChoice {
    /// The query's text, e.g. `mean(Observation.valueQuantity) where code =
    /// http://loinc.org|2498-4 and date in last 7 days and range 0..500`.
    pub text: Option<String>,
    /// The name of a query the provider's research policy offers.
    pub offer: Option<String>,
    /// The research policy that `offer` reads (default: `policy.json` in the data
    /// directory); a `text` query is checked against it when given.
    pub policy: Option<PathBuf>,
}

/// A resolved bounty query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounty {
    /// Its canonical text.
    pub text: String,
    /// Its commitment.
    pub commitment: B256,
}

impl BountyChoice {
    /// The bounty, if one was chosen; `dir` is the provider's data directory.
    ///
    /// # Errors
    /// When the text does not parse, the policy cannot be read, does not allow the
    /// query or offers no query of that name.
    pub fn resolve(&self, dir: &Path) -> Result<Option<Bounty>> {
        let today = time::OffsetDateTime::now_utc().date();
        let query = match (&self.text, &self.offer) {
            (Some(text), _) => {
                let q = BountyQuery::parse_relative(text, today)
                    .context("the bounty query is not valid")?;
                if let Some(path) = &self.policy {
                    let policy = load(path)?;
                    policy.check(&q).context("the bounty query is not allowed by the policy")?;
                }
                q
            }
            (None, Some(name)) => {
                let path = self.policy.clone().unwrap_or_else(|| dir.join(POLICY_FILE));
                let policy = load(&path)?;
                let Some(q) = policy.offer(name, today) else {
                    let names: Vec<&str> = policy.offers.iter().map(|o| o.name.as_str()).collect();
                    bail!(
                        "the research policy {} offers no valid query named '{name}' (it offers: {})",
                        path.display(),
                        if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
                    );
                };
                q
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Bounty { text: query.canonical(), commitment: query.commitment() }))
    }
}

fn load(path: &Path) -> Result<Policy> {
    Policy::load(path).with_context(|| format!("cannot use the research policy {}", path.display()))
}

impl Bounty {
    /// Publishes the text at the provider's gatekeeper and returns the commitment to
    /// put on chain (checked to be the one computed here).
    ///
    /// # Errors
    /// When the gatekeeper serves no research bounties, refuses the text, or publishes
    /// it under another commitment.
    pub async fn publish(&self, client: &GatekeeperClient) -> Result<B256> {
        let published = match client.publish_bounty(&self.text).await {
            Ok(c) => c,
            Err(ClientError::Refused { status: 404 | 405, .. }) => bail!(
                "the gatekeeper does not serve research bounties, so it cannot publish the bounty query: start it with a research policy"
            ),
            Err(e) => return Err(Error::gatekeeper("the gatekeeper refused the bounty query", e)),
        };
        ensure!(
            published == self.commitment,
            "the gatekeeper published the bounty query under commitment {published}, but its text commits to {}",
            self.commitment
        );
        Ok(published)
    }
}
