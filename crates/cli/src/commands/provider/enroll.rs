//! `medrec provider enroll`: a relationship with a patient, on chain and at the
//! gatekeeper.
//!
//! 1. The patient is resolved through the Registrar by identity commitment
//!    (`keccak256(salt ‖ identity)`), or taken as an address; an institution registers
//!    an unknown identity to the address given.
//! 2. The wallet's next unused delegate (`m/44'/60'/1'/0/i'`) acts for this relationship
//!    only; indexes already used on chain are skipped, so a lost `relationships.json`
//!    never makes two relationships share a delegate.
//! 3. `Relationships.create` (from the provider) carries pointer 0's query commitment and
//!    data hash; the delegate gets gas money and sends `addPointer` for each further
//!    pointer, each with the bounty query's commitment.
//! 4. The gatekeeper is told the pointer queries, once its chain follower has seen the
//!    relationship.

use super::{
    Context as Ctx, ENROLL_PATIENCE, ENROLL_PAUSE,
    bounty::BountyArgs,
    state::{Enrolled, Enrollments},
    tx,
};
use crate::{
    commands::common::{ChainArgs, WalletArgs, until_caught_up},
    output,
};
use alloy::primitives::{Address, B256, U256};
use anyhow::{Context, bail};
use clap::Args;
use medrec_chain::inbox::{self, Notice};
use medrec_contracts::{Registrar, Relationships};
use medrec_gatekeeper::pointer::{self, PointerQuery};
use medrec_primitives::{IdentityCommitment, RelationshipId};
use medrec_store::fhir::{ResourceId, ResourceType};
use serde_json::json;
use std::{collections::BTreeSet, process::ExitCode};

/// The pointers a relationship gets when `--pointer` is not given: laboratory results,
/// conditions, medications, immunizations and allergies.
pub(super) const DEFAULT_POINTERS: [&str; 5] = [
    "Observation?category=laboratory",
    "Condition",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
];

/// Wei sent to a delegate for its gas when it holds less than half of it (0.01 ETH).
pub(super) const DELEGATE_FUNDING: u128 = 10_000_000_000_000_000;

/// Arguments of `medrec provider enroll`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).multiple(true).args(["patient", "identity"]))]
pub(super) struct EnrollArgs {
    /// The patient's FHIR `Patient` id in the provider's record store.
    #[arg(long, value_name = "FHIR_ID")]
    patient_id: String,
    /// The patient's address (registered under --identity when that is unknown and this
    /// provider is a certified institution).
    #[arg(long, value_name = "ADDRESS")]
    patient: Option<Address>,
    /// The patient's identity text (e.g. a medical record number), resolved through the
    /// Registrar with --salt.
    #[arg(long, value_name = "TEXT", requires = "salt")]
    identity: Option<String>,
    /// The secret 32-byte salt of the patient's identity commitment (hex).
    #[arg(long, value_name = "HEX32", requires = "identity")]
    salt: Option<B256>,
    /// A pointer's query (a FHIR search such as `Observation?category=laboratory`); repeat
    /// for several. Default: labs, conditions, medications, immunizations, allergies.
    #[arg(long = "pointer", value_name = "QUERY")]
    pointers: Vec<String>,
    #[command(flatten)]
    bounty: BountyArgs,
    /// Wei sent to the relationship's delegate for its gas.
    #[arg(long, value_name = "WEI", default_value_t = DELEGATE_FUNDING)]
    delegate_funding: u128,
    /// Wei sent to the patient, when they hold less than half of it, so that they can
    /// answer (accept, share, revoke, opt in) without buying ether; 0 sends nothing.
    #[arg(long, value_name = "WEI", default_value_t = DELEGATE_FUNDING)]
    patient_funding: u128,
    /// Print one JSON object with the result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `medrec provider enroll`.
#[allow(clippy::too_many_lines)]
pub(super) async fn enroll(a: &EnrollArgs) -> anyhow::Result<ExitCode> {
    let texts: Vec<String> = if a.pointers.is_empty() {
        DEFAULT_POINTERS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        a.pointers.clone()
    };
    let queries = texts.iter().map(|t| PointerQuery::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let patient_id: ResourceId = a
        .patient_id
        .parse()
        .with_context(|| format!("'{}' is not a FHIR resource id", a.patient_id))?;
    let ctx = Ctx::open(&a.chain, &a.wallet)?;
    let bounty = a.bounty.resolve(&ctx.dir)?;
    if queries.len() > 1 && bounty.is_none() {
        bail!(
            "every pointer after the first carries a bounty query on chain: pass --bounty TEXT or --offer NAME (or give a single --pointer)"
        );
    }

    // The patient's records must be there before a pointer can hash them.
    let store = ctx.store().await?;
    let found = store
        .read(ResourceType::Patient, &patient_id)
        .await
        .context("cannot read the provider's record store")?;
    anyhow::ensure!(
        found.is_some(),
        "there is no Patient/{} in the provider's record store: import the patient's records first (`medrec provider import`)",
        a.patient_id
    );

    // The bounty's text goes to the gatekeeper before anything goes on chain, so that a
    // gatekeeper that cannot take it stops the enrollment before it starts.
    let bounty_commitment = match &bounty {
        Some(b) if queries.len() > 1 => Some(b.publish(&ctx.client()).await?),
        _ => None,
    };
    let patient = resolve_patient(&ctx, a).await?;
    let me = ctx.wallet.address();

    // The next delegate index not used on chain.
    let mut state = Enrollments::load(&ctx.dir)?;
    let reader = ctx.chain.reader()?;
    let notices = inbox::read(&reader, ctx.chain.relationships, ctx.chain.from_block, me, 0, None)
        .await
        .context("cannot read this provider's relationships from the chain")?;
    let used: BTreeSet<Address> = notices
        .iter()
        .filter_map(|d| match d.notice {
            Notice::Created { provider, delegate, .. } if provider == me => Some(delegate),
            _ => None,
        })
        .collect();
    let mut index = state.next_index();
    let mut delegate = ctx.wallet.delegate_address(index)?;
    while used.contains(&delegate) {
        index = index.checked_add(1).context("no delegate index left")?;
        delegate = ctx.wallet.delegate_address(index)?;
    }
    anyhow::ensure!(delegate != patient, "the delegate address cannot be the patient's");
    let relationship = RelationshipId::derive(patient, delegate);

    // Pointer 0 comes with the relationship.
    let first = pointer::run(store.as_ref(), &queries[0], &patient_id).await?;
    let by_provider = ctx.chain.sender(ctx.wallet.account().clone())?;
    let rels = Relationships::new(ctx.chain.relationships, &by_provider);
    let receipt = tx::send(
        rels.create(patient, delegate, queries[0].commitment(), first.data_hash),
        "creating the relationship",
    )
    .await?;
    let mut pointers_out = vec![json!({
        "pointer": 0,
        "query": texts[0],
        "resources": first.resources.len(),
        "data_hash": first.data_hash,
        "tx": receipt.transaction_hash,
    })];
    let created_tx = receipt.transaction_hash;
    let mut entry = Enrolled {
        delegate_index: index,
        delegate,
        patient,
        patient_id: a.patient_id.clone(),
        pointers: vec![texts[0].clone()],
        gatekeeper_enrolled: false,
    };
    state.relationships.insert(relationship.0, entry.clone());
    state.save(&ctx.dir)?;

    tx::fund(&by_provider, patient, U256::from(a.patient_funding), "the patient").await?;

    // Further pointers, from the delegate, each with the bounty.
    if let Some(commitment) = bounty_commitment {
        tx::fund(&by_provider, delegate, U256::from(a.delegate_funding), "the delegate").await?;
        let by_delegate = ctx.chain.sender(ctx.wallet.delegate(index)?)?;
        let rels = Relationships::new(ctx.chain.relationships, &by_delegate);
        for (i, (q, text)) in queries.iter().zip(&texts).enumerate().skip(1) {
            let data = pointer::run(store.as_ref(), q, &patient_id).await?;
            let receipt = tx::send(
                rels.addPointer(patient, q.commitment(), data.data_hash, commitment),
                &format!("adding pointer {i}"),
            )
            .await?;
            pointers_out.push(json!({
                "pointer": i,
                "query": text,
                "resources": data.resources.len(),
                "data_hash": data.data_hash,
                "tx": receipt.transaction_hash,
            }));
            entry.pointers.push(text.clone());
            state.relationships.insert(relationship.0, entry.clone());
            state.save(&ctx.dir)?;
        }
    }

    // The gatekeeper learns the queries once it has seen the relationship.
    let client = ctx.client();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    until_caught_up(ENROLL_PAUSE, ENROLL_PATIENCE, || {
        client.enroll(relationship, &a.patient_id, &refs)
    })
    .await
    .context("the gatekeeper did not take the enrollment")?;
    entry.gatekeeper_enrolled = true;
    state.relationships.insert(relationship.0, entry);
    state.save(&ctx.dir)?;

    if a.json {
        output::result(
            &json!({
                "relationship": relationship.0,
                "patient": patient,
                "patient_id": a.patient_id,
                "delegate": delegate,
                "delegate_index": index,
                "tx": created_tx,
                "pointers": pointers_out,
                "bounty": bounty_commitment,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "enrolled patient {patient} (FHIR id {}): relationship {} with delegate {delegate} (#{index}), tx {created_tx}",
            a.patient_id, relationship.0
        ));
        for p in &pointers_out {
            output::result(&format!(
                "  pointer {}: {} ({}, data hash {}, tx {})",
                p["pointer"],
                p["query"].as_str().unwrap_or_default(),
                super::count(
                    usize::try_from(p["resources"].as_u64().unwrap_or_default())
                        .unwrap_or_default(),
                    "resource"
                ),
                p["data_hash"].as_str().unwrap_or_default(),
                p["tx"].as_str().unwrap_or_default()
            ));
        }
        if let Some(c) = bounty_commitment {
            output::result(&format!("  bounty commitment {c}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The patient's address: resolved from the identity commitment, registered (by an
/// institution) when unknown and an address is given, or the address given.
async fn resolve_patient(ctx: &Ctx, a: &EnrollArgs) -> anyhow::Result<Address> {
    let (Some(identity), Some(salt)) = (&a.identity, &a.salt) else {
        return a.patient.context("name the patient with --patient or --identity and --salt");
    };
    let commitment = IdentityCommitment::new(salt, identity).0;
    let reader = ctx.chain.reader()?;
    let registrar = Registrar::new(ctx.chain.registrar, &reader);
    let found = registrar.resolve(commitment).call().await.with_context(|| {
        format!("cannot read the Registrar at {} on {}", ctx.chain.registrar, ctx.chain.rpc_url)
    })?;
    if found.account != Address::ZERO {
        // Role 1 is Patient in the Registrar.
        anyhow::ensure!(
            found.role == 1,
            "the identity {commitment} belongs to a provider, not a patient"
        );
        if let Some(given) = a.patient {
            anyhow::ensure!(
                given == found.account,
                "the identity {commitment} is registered to {}, not to {given}",
                found.account
            );
        }
        return Ok(found.account);
    }
    let Some(patient) = a.patient else {
        bail!(
            "no patient is registered under the identity commitment {commitment}: check the identity and the salt, or give the patient's address with --patient to register it"
        );
    };
    let me = ctx.wallet.address();
    let is_institution = registrar
        .isInstitution(me)
        .call()
        .await
        .context("cannot ask the Registrar whether this provider is an institution")?;
    anyhow::ensure!(
        is_institution,
        "no patient is registered under the identity commitment {commitment}, and only a certified institution may register one ({me} is not)"
    );
    let sender = ctx.chain.sender(ctx.wallet.account().clone())?;
    tx::send(
        Registrar::new(ctx.chain.registrar, &sender).registerPatient(commitment, patient),
        "registering the patient",
    )
    .await?;
    output::note(&format!("registered the patient's identity {commitment} to {patient}"));
    Ok(patient)
}
