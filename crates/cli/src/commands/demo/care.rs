//! The demo's keys story (issue 13): a custodian acting with the rights the patient gave
//! and refused the others, every act naming the key that acted; and a guardian recovery
//! of another patient's account, a fraudulent one vetoed first, the real one completed
//! after its time-lock, the old key then refused.

use super::{Narrator, ProviderSite, provider_name, short, target};
use alloy::{
    primitives::{Address, keccak256},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, bail};
use medrec_chain::inbox::Notice;
use medrec_client::{
    Chain,
    patient::{
        PatientSession, Window,
        keys::{Guardians, approve_recovery},
    },
    timeline,
};
use medrec_contracts::Rights;
use medrec_devchain::{genesis::DevAccount, node::Node};
use serde_json::{Value, json};

/// How long a guardian recovery waits for a veto (`Relationships.RECOVERY_DELAY`).
const RECOVERY_DELAY: u64 = 72 * 3600;

/// The patient lets their spouse see and share (not decide); the spouse shares a
/// relationship with the family doctor and is refused a decision.
pub(super) async fn custodian(
    n: &mut Narrator,
    chain: &Chain,
    me: &PatientSession,
    spouse: &DevAccount,
    sites: &[ProviderSite],
) -> anyhow::Result<Value> {
    n.step("A custodian: the patient lets their spouse act for them with the rights to see and to share, not to decide (`medrec patient keys add-custodian`); the spouse's own key signs that it accepts.");
    let rights = Rights::SEE | Rights::SHARE;
    me.add_custodian(&spouse.signer(), rights, 0).await?;
    n.say(&format!(
        "   {} now acts for account {} ({})",
        spouse.address,
        me.address(),
        Rights(rights)
    ));

    let second = &sites[1];
    let doctor = Address::from_word(keccak256("demo family doctor"));
    n.step(&format!("The spouse shares the lab results at {} with the family doctor for a day (`medrec patient --for-account … share`): the grant on chain names the spouse's key as the one that acted.", second.name));
    let by_spouse = PatientSession::acting(chain.clone(), spouse.signer(), me.address(), None);
    let window = Window { duration: Some(86_400), ..Window::default() };
    let grant =
        by_spouse.share(&target(second.relationship), doctor, Some(&[0u8][..]), window).await?;
    let block = grant.receipt.block_number.unwrap_or(0);
    let notices = chain.notices(me.address(), 0, None).await?;
    let actor = notices
        .iter()
        .rev()
        .find(|d| matches!(d.notice, Notice::Granted { viewer, .. } if viewer == doctor))
        .and_then(|d| d.actor)
        .with_context(|| {
            format!("the patient's inbox does not show the spouse's grant: {notices:?}")
        })?;
    anyhow::ensure!(actor == spouse.address, "the grant names {actor}, not the spouse");
    n.say(&format!(
        "   the patient's inbox: the family doctor {doctor} may see pointer 0 of relationship {} ({}) until {}, granted by key {actor}",
        short(second.relationship.0),
        provider_name(sites, Some(second.account.address)),
        timeline::when(grant.expires_at)
    ));

    n.step("The spouse tries to opt that relationship in to research, a decision the patient kept: the chain refuses.");
    let refused = match by_spouse.set_research(&target(second.relationship), true).await {
        Ok(_) => bail!("the spouse's key was allowed a decision it does not hold"),
        Err(e) => e.to_string(),
    };
    n.say(&format!("   refused: {refused}"));
    Ok(json!({
        "account": me.address(),
        "key": spouse.address,
        "rights": Rights(rights).to_string(),
        "granted": {
            "relationship": second.relationship.0,
            "viewer": doctor,
            "block": block,
            "actor": actor,
        },
        "refused": refused,
    }))
}

fn signer(seed: &str) -> anyhow::Result<PrivateKeySigner> {
    Ok(PrivateKeySigner::from_bytes(&keccak256(seed))?)
}

/// Another patient of Riverside Clinic (`accounts[10]`, of the research cohort) names
/// three guardians (any two suffice); a fraudulent recovery is vetoed; she loses her
/// key and two guardians move her account to a new one: refused before the time-lock,
/// completed after it when `advance` (the chain's clock moves 72 hours), the old key
/// then refused.
pub(super) async fn recovery(
    n: &mut Narrator,
    node: &Node,
    chain: &Chain,
    accounts: &[DevAccount],
    site: &ProviderSite,
    advance: bool,
) -> anyhow::Result<Value> {
    let patient = accounts.get(10).context("not enough development accounts")?;
    let account = patient.address;
    let her = PatientSession::with_signer(chain.clone(), patient.signer());
    let relationship = *her
        .relationships()
        .await?
        .keys()
        .next()
        .context("the second patient has no relationship")?;
    n.step(&format!("Guardian recovery: {account}, another patient of {}, names three guardians, any two of whom may move her account to a new key (`medrec patient guardians set`); the chain holds only a salted commitment, not who they are.", site.name));
    let guardians: Vec<PrivateKeySigner> =
        (1..=3).map(|i| signer(&format!("demo guardian {i}"))).collect::<anyhow::Result<_>>()?;
    let list = Guardians::new(guardians.iter().map(PrivateKeySigner::address).collect(), 2)?;
    her.set_guardians(&list).await?;
    n.say(&format!("   commitment {}", short(list.commitment())));

    n.step("Someone who tricked two guardians into approving starts moving her account to their own key; during the 72-hour time-lock her key vetoes it (`medrec recovery veto`).");
    let thief = signer("demo thief")?;
    let approve = |who: &[&PrivateKeySigner], to: Address, nonce: u32| {
        who.iter()
            .map(|g| approve_recovery(chain, g, account, to, nonce))
            .collect::<medrec_client::Result<Vec<_>>>()
    };
    let nonce = chain.recovery(account).await?.nonce;
    let stolen = approve(&[&guardians[0], &guardians[2]], thief.address(), nonce)?;
    chain.start_recovery(thief.clone(), account, &thief, &list, stolen).await?;
    her.veto_recovery().await?;
    n.say(&format!(
        "   vetoed: the account stays with her key; the approvals were for recovery nonce {nonce}, which has moved on"
    ));

    n.step("She loses her key. On a new wallet she asks two guardians to approve (`medrec guardian approve`) and starts the recovery (`medrec recovery start`); completing it before the time-lock passes is refused.");
    let new_key = signer("demo recovered key")?;
    let nonce = chain.recovery(account).await?.nonce;
    let approvals = approve(&[&guardians[0], &guardians[1]], new_key.address(), nonce)?;
    chain.start_recovery(new_key.clone(), account, &new_key, &list, approvals).await?;
    let waiting = chain.recovery(account).await?;
    let locked = match chain.complete_recovery(new_key.clone(), account, account).await {
        Ok(_) => bail!("the recovery completed before its time-lock"),
        Err(e) => e.to_string(),
    };
    n.say(&format!("   refused: {locked}"));
    let mut out = json!({
        "account": account,
        "guardians": list.guardians.len(),
        "threshold": list.threshold,
        "vetoed": thief.address(),
        "old_key": account,
        "new_key": new_key.address(),
        "ready_at": waiting.ready_at,
        "refused_before_time_lock": locked,
        "completed": false,
    });
    if !advance {
        n.say(&format!(
            "   (with --keep-running the chain's clock is not moved, so that the apps' dates stay true: the recovery completes from {} with `medrec recovery complete --account {account}`)",
            timeline::when(waiting.ready_at)
        ));
        return Ok(out);
    }

    n.step("72 hours pass without a veto (the devchain's clock moves on, as evm_increaseTime does); the recovery completes (`medrec recovery complete`), and her old key is refused at once.");
    node.increase_time(RECOVERY_DELAY + 60);
    // A block at the new time (`evm_mine`): calls are checked against the latest one.
    node.mine_now()?;
    let done = chain.complete_recovery(new_key.clone(), account, account).await?;
    let old_refused = match her.set_research(&target(relationship), false).await {
        Ok(_) => bail!("the old key still acted after the recovery"),
        Err(e) => e.to_string(),
    };
    n.say(&format!(
        "   completed in block {}: account {account} acts with key {}",
        done.block_number.unwrap_or(0),
        new_key.address()
    ));
    n.say(&format!("   the old key, refused: {old_refused}"));
    // The new key holds every right: it names new guardians (the old ones were revealed).
    let recovered = PatientSession::acting(chain.clone(), new_key.clone(), account, None);
    let fresh: Vec<Address> = (4..=6)
        .map(|i| signer(&format!("demo guardian {i}")).map(|s| s.address()))
        .collect::<anyhow::Result<_>>()?;
    recovered.set_guardians(&Guardians::new(fresh, 2)?).await?;
    n.say("   the new key names new guardians: the recovery revealed the old ones and cleared them; her relationship and its grants are as they were");
    out["completed"] = json!(true);
    out["block"] = json!(done.block_number);
    out["old_key_refused"] = json!(old_refused);
    Ok(out)
}
