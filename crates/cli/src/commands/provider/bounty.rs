//! The flags that choose the bounty query every pointer change carries.

use clap::Args;
use medrec_client::provider::bounty::BountyChoice;
use std::path::PathBuf;

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

impl BountyArgs {
    /// The choice, for the library.
    pub(super) fn choice(&self) -> BountyChoice {
        BountyChoice {
            text: self.bounty.clone(),
            offer: self.offer.clone(),
            policy: self.policy.clone(),
        }
    }
}
