//! The bounty query that every pointer change carries: given as text (`--bounty`) or by
//! the name of an offer in the provider's research policy (`--offer`), resolved to its
//! canonical text (relative windows such as `date in last 7 days` become dates, as of
//! today, UTC), published at the gatekeeper, and committed to on chain.

use super::state::POLICY_FILE;
use alloy::primitives::B256;
use anyhow::Context;
use clap::Args;
use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
use medrec_research::{policy::Policy, query::BountyQuery};
use std::path::{Path, PathBuf};

/// How the bounty query is chosen.
#[derive(Debug, Clone, Args)]
pub(super) struct BountyArgs {
    /// The bounty query's text, e.g. `mean(Observation.valueQuantity) where code =
    /// http://loinc.org|2498-4 and date in last 7 days and range 0..500`.
    #[arg(long, value_name = "TEXT", conflicts_with = "offer")]
    bounty: Option<String>,
    /// The name of a query the provider's research policy offers.
    #[arg(long, value_name = "NAME")]
    offer: Option<String>,
    /// The research policy (JSON) that --offer reads (default: policy.json in the data
    /// directory); a --bounty query is checked against it when given.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// A resolved bounty query.
#[derive(Debug, Clone)]
pub(super) struct Bounty {
    /// Its canonical text.
    pub text: String,
    /// Its commitment.
    pub commitment: B256,
}

impl BountyArgs {
    /// The bounty, if one was given; `dir` is the provider's data directory.
    pub(super) fn resolve(&self, dir: &Path) -> anyhow::Result<Option<Bounty>> {
        let today = time::OffsetDateTime::now_utc().date();
        let query = match (&self.bounty, &self.offer) {
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
                policy.offer(name, today).with_context(|| {
                    let names: Vec<&str> = policy.offers.iter().map(|o| o.name.as_str()).collect();
                    format!(
                        "the research policy {} offers no valid query named '{name}' (it offers: {})",
                        path.display(),
                        if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
                    )
                })?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Bounty { text: query.canonical(), commitment: query.commitment() }))
    }
}

fn load(path: &Path) -> anyhow::Result<Policy> {
    Policy::load(path).with_context(|| format!("cannot use the research policy {}", path.display()))
}

impl Bounty {
    /// Publishes the text at the provider's gatekeeper and returns the commitment to
    /// put on chain (checked to be the one computed here).
    pub(super) async fn publish(&self, client: &GatekeeperClient) -> anyhow::Result<B256> {
        let published = match client.publish_bounty(&self.text).await {
            Ok(c) => c,
            Err(ClientError::Refused { status: 404 | 405, .. }) => anyhow::bail!(
                "the gatekeeper does not serve research bounties, so it cannot publish the bounty query: start it with a research policy"
            ),
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context("the gatekeeper refused the bounty query")
                );
            }
        };
        anyhow::ensure!(
            published == self.commitment,
            "the gatekeeper published the bounty query under commitment {published}, but its text commits to {}",
            self.commitment
        );
        Ok(published)
    }
}
