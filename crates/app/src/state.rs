//! What the app holds while it runs: the wallet's directory and the chain, the
//! patient's session once unlocked, the records in memory (on disk only in the client's
//! encrypted cache), the providers' names, a one-shot message for the next page, and
//! the live feed of chain notices that the follower task broadcasts.

use crate::server::Role;
use crate::views::{self, Names};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use medrec_chain::inbox::{Notice, Summary};
use medrec_client::{
    ChainSpec,
    care::ClinicianSession,
    patient::{
        PatientSession,
        access_log::AccessEntry,
        offers::Offers,
        records::{Problem, Records, cache},
    },
    viewer::ViewerSession,
};
use medrec_primitives::{RelationshipId, Status};
use medrec_wallet::{Passphrase, Wallet};
use serde::Serialize;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    sync::{RwLock, broadcast},
    task::AbortHandle,
};

/// How often the follower asks the chain for a new block (a new notice shows within
/// about this plus one page update, well under 2 s).
const POLL: Duration = Duration::from_millis(400);
/// How long the offers asked of the gatekeepers are reused.
const OFFERS_TTL: Duration = Duration::from_secs(5);
/// How often the app asks the gatekeepers for new offers.
const OFFERS_POLL: Duration = Duration::from_secs(2);
/// How long the access log fetched from the gatekeepers is reused.
const ACCESS_TTL: Duration = Duration::from_secs(20);

/// Something that happened, pushed to the open pages (server-sent events).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Live {
    /// `notice` (a chain event) or `records` (the records were refreshed).
    pub(crate) kind: &'static str,
    /// The heading.
    pub(crate) title: String,
    /// The sentence.
    pub(crate) sentence: String,
    /// The block, for notices.
    pub(crate) block: u64,
}

/// A message for the next page shown (after an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Whether it reports a failure.
    pub(crate) error: bool,
    /// The sentence.
    pub(crate) text: String,
}

/// The records as last refreshed, and whether a refresh is running.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// What the cache holds.
    pub(crate) records: Records,
    /// What went wrong at the last refresh.
    pub(crate) problems: Vec<Problem>,
    /// A refresh is running.
    pub(crate) refreshing: bool,
    /// Why the last refresh failed as a whole, if it did.
    pub(crate) failure: Option<String>,
}

/// The shared state of the app (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) data_dir: PathBuf,
    pub(crate) chain: ChainSpec,
    /// The secret a browser holds (as a cookie) to use this app.
    pub(crate) key: crate::session::Key,
    /// Whose app it is.
    pub(crate) role: crate::server::Role,
    /// The key-derivation cost of wallets written by the app.
    pub(crate) kdf: medrec_wallet::ScryptParams,
    /// Unlocked with a demo's development key: nothing to lock with a passphrase.
    pub(crate) demo: std::sync::atomic::AtomicBool,
    pub(crate) session: RwLock<Option<PatientSession>>,
    /// The viewer's session, in a viewer's app.
    pub(crate) viewer: RwLock<Option<ViewerSession>>,
    /// The same key as an emergency clinician's, in a viewer's app (break-glass).
    pub(crate) clinician: RwLock<Option<ClinicianSession>>,
    /// The researcher's session, in a researcher's app.
    pub(crate) researcher: RwLock<Option<crate::research::ResearcherSession>>,
    /// The provider's session, in a provider's app.
    pub(crate) provider: RwLock<Option<Arc<medrec_client::provider::ProviderSession>>>,
    /// A recovery phrase shown on the Create page, until it is confirmed.
    pub(crate) pending_phrase: Mutex<Option<medrec_wallet::Mnemonic>>,
    /// The researcher's miner, while it runs.
    pub(crate) mining: Mutex<Option<crate::research::Mining>>,
    pub(crate) held: RwLock<Held>,
    pub(crate) names: RwLock<Names>,
    pub(crate) flash: Mutex<Option<Flash>>,
    pub(crate) live: broadcast::Sender<Live>,
    pub(crate) access: tokio::sync::Mutex<Option<(Instant, Arc<Vec<AccessEntry>>)>>,
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
    /// The custodian this app's key is, when it acts for another account.
    pub(crate) acting: Mutex<Option<crate::keys::Acting>>,
    /// The offers waiting at the directory's gatekeepers, as last asked.
    pub(crate) offers: tokio::sync::Mutex<Option<(Instant, Arc<Offers>)>>,
    /// Offers the patient answered "Not now" (in memory: they come back after a
    /// restart, the offer still waiting at the provider).
    pub(crate) set_aside: Mutex<BTreeSet<RelationshipId>>,
    unlocking: tokio::sync::Mutex<()>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The state of an app for the wallet in `data_dir` on `chain`, still locked.
    pub(crate) fn new(
        data_dir: PathBuf,
        chain: ChainSpec,
        role: crate::server::Role,
        kdf: medrec_wallet::ScryptParams,
    ) -> Self {
        let (live, _) = broadcast::channel(256);
        Self(Arc::new(Inner {
            data_dir,
            chain,
            key: crate::session::Key::random(),
            role,
            kdf,
            demo: std::sync::atomic::AtomicBool::new(false),
            session: RwLock::new(None),
            viewer: RwLock::new(None),
            clinician: RwLock::new(None),
            researcher: RwLock::new(None),
            mining: Mutex::new(None),
            pending_phrase: Mutex::new(None),
            provider: RwLock::new(None),
            held: RwLock::new(Held::default()),
            names: RwLock::new(Names::default()),
            flash: Mutex::new(None),
            live,
            access: tokio::sync::Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            acting: Mutex::new(None),
            offers: tokio::sync::Mutex::new(None),
            set_aside: Mutex::new(BTreeSet::new()),
            unlocking: tokio::sync::Mutex::new(()),
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The unlocked patient's session, if any.
    pub(crate) async fn session(&self) -> Option<PatientSession> {
        self.session.read().await.clone()
    }

    /// The unlocked viewer's session, if any.
    pub(crate) async fn viewer(&self) -> Option<ViewerSession> {
        self.viewer.read().await.clone()
    }

    /// The unlocked clinician's session (the viewer's key), if any.
    pub(crate) async fn clinician(&self) -> Option<ClinicianSession> {
        self.clinician.read().await.clone()
    }

    /// Whether the viewer's account belongs to an emergency group now (no when the
    /// chain cannot say).
    pub(crate) async fn in_emergency_group(&self) -> bool {
        match self.clinician().await {
            Some(c) => c.emergency_groups().await.is_ok_and(|g| !g.is_empty()),
            None => false,
        }
    }

    /// Whether the app is unlocked (for its role).
    pub(crate) async fn unlocked(&self) -> bool {
        match self.role {
            Role::Patient => self.session.read().await.is_some(),
            Role::Viewer => self.viewer.read().await.is_some(),
            Role::Researcher => self.researcher.read().await.is_some(),
            Role::Provider => self.provider.read().await.is_some(),
        }
    }

    /// Whether the app was unlocked with a demo's development key (it cannot be locked).
    pub(crate) fn is_demo(&self) -> bool {
        self.demo.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Unlocks the app with a demo's development key: no wallet, no passphrase.
    ///
    /// # Errors
    /// A sentence when the chain cannot be reached or the cache cannot be read.
    pub(crate) async fn unlock_demo(&self, key: PrivateKeySigner) -> Result<(), String> {
        let _one_at_a_time = self.unlocking.lock().await;
        let chain = self.chain.connect().await.map_err(|e| {
            format!("The chain cannot be reached ({e}). Start the chain, then try again.")
        })?;
        self.demo.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.role {
            Role::Viewer => {
                *self.clinician.write().await =
                    Some(ClinicianSession::new(chain.clone(), key.clone()));
                self.start_viewer(ViewerSession::new(chain, key)).await;
            }
            Role::Researcher => {
                *self.researcher.write().await =
                    Some(crate::research::ResearcherSession::new(chain, key, &self.data_dir));
            }
            Role::Provider => {
                return Err(
                    "A provider's app needs its wallet and provider.json (`medrec provider init`), not a development key.".to_owned(),
                );
            }
            Role::Patient => {
                medrec_wallet::fs::create_private_dir(&self.data_dir).map_err(|e| {
                    format!("The app's folder {} cannot be created: {e}.", self.data_dir.display())
                })?;
                let session = PatientSession::with_signer_in(chain, key, self.data_dir.clone());
                self.start_patient(session).await?;
            }
        }
        Ok(())
    }

    /// Leaves a message for the next page.
    pub(crate) fn tell(&self, error: bool, text: impl Into<String>) {
        if let Ok(mut f) = self.flash.lock() {
            *f = Some(Flash { error, text: text.into() });
        }
    }

    /// Takes the message left for this page.
    pub(crate) fn take_flash(&self) -> Option<Flash> {
        self.flash.lock().ok().and_then(|mut f| f.take())
    }

    /// Opens the wallet with `passphrase`, connects to the chain, loads the encrypted
    /// cache and starts following the chain and refreshing the records.
    ///
    /// # Errors
    /// A sentence: wrong passphrase, no wallet, chain unreachable.
    pub(crate) async fn unlock(&self, passphrase: Passphrase) -> Result<(), String> {
        let _one_at_a_time = self.unlocking.lock().await;
        let dir = self.data_dir.clone();
        if !Wallet::exists(&dir) {
            return Err(format!(
                "There is no wallet in {}: create one first (`medrec {} new`), or start the app with the right --data-dir.",
                dir.display(),
                self.role.as_str()
            ));
        }
        let wallet = tokio::task::spawn_blocking(move || Wallet::open(&dir, &passphrase))
            .await
            .map_err(|_| "Opening the wallet was interrupted; try again.".to_owned())?
            .map_err(|e| {
                if e.is_wrong_passphrase() {
                    "That passphrase does not open this wallet. Check it and try again.".to_owned()
                } else {
                    format!("The wallet cannot be opened: {e}.")
                }
            })?;
        // Already unlocked (by another browser, or at start): the passphrase was checked
        // above, which is what a new browser session needs; nothing else changes.
        if self.unlocked().await {
            return Ok(());
        }
        let chain = self.chain.connect().await.map_err(|e| {
            format!("The wallet is fine, but the chain cannot be reached ({e}). Start the chain, then try again.")
        })?;
        match self.role {
            Role::Viewer => {
                *self.clinician.write().await =
                    Some(ClinicianSession::new(chain.clone(), wallet.account().clone()));
                self.start_viewer(ViewerSession::new(chain, wallet.account().clone())).await;
                Ok(())
            }
            Role::Researcher => {
                *self.researcher.write().await = Some(crate::research::ResearcherSession::new(
                    chain,
                    wallet.account().clone(),
                    &self.data_dir,
                ));
                Ok(())
            }
            Role::Provider => {
                let config = medrec_client::provider::state::ProviderConfig::load(&self.data_dir)
                    .map_err(|e| crate::error::sentence(&e))?;
                let session = medrec_client::provider::ProviderSession::new(
                    &self.data_dir,
                    config,
                    wallet,
                    &self.chain,
                )
                .map_err(|e| crate::error::sentence(&e))?;
                *self.provider.write().await = Some(Arc::new(session));
                Ok(())
            }
            Role::Patient => self.start_patient(PatientSession::new(chain, &wallet)).await,
        }
    }

    /// Holds the viewer's session, publishing its encryption key first (once: patients
    /// then seal each relationship's key for it, and the viewer reads the provider from
    /// the chain); tells the person the first time.
    async fn start_viewer(&self, session: ViewerSession) {
        match session.publish_encryption_key().await {
            Ok(true) => self.tell(false, "Your encryption key is now published on the chain, once and for all: a patient who shares records with you from now on also lets you read which provider keeps them. Nobody else can read it."),
            Ok(false) => {}
            Err(e) => self.tell(true, format!("Your encryption key could not be published ({}): patients' grants will not name their providers to you, and the app will ask the network's gatekeepers instead.", crate::error::sentence(&e).trim_end_matches('.'))),
        }
        *self.viewer.write().await = Some(session);
    }

    /// The patient's session of `session`'s key: its own account's, or, when the chain
    /// says the key acts for another account (a custodian's), a session acting for that
    /// account with the key's rights, its cache in this app's folder.
    async fn detect_acting(&self, session: PatientSession) -> PatientSession {
        let chain = session.chain().clone();
        let key = session.signer().address();
        let Ok((account, rights)) = chain.acting_for(key).await else { return session };
        if account == key || account.is_zero() {
            return session;
        }
        let until =
            chain.relationships().keyOf(key).call().await.map_or(0, |k| k.until.to::<u64>());
        if let Ok(mut acting) = self.acting.lock() {
            *acting = Some(crate::keys::Acting { account, key, rights, until });
        }
        PatientSession::acting(chain, session.signer().clone(), account, None)
            .in_dir(self.data_dir.clone())
    }

    /// The custodian this app's key is, when it acts for another account.
    pub(crate) fn acting(&self) -> Option<crate::keys::Acting> {
        self.acting.lock().ok().and_then(|a| *a)
    }

    /// Whether the session may do what needs `right`: a sentence saying why not.
    pub(crate) fn may(&self, right: u8, what: &str) -> Result<(), String> {
        match self.acting() {
            Some(a) if !a.may(right) => Err(a.refusal(right, what)),
            _ => Ok(()),
        }
    }

    /// The offers waiting for the account at the directory's gatekeepers, asked at most
    /// every 5 s (`fresh`: now).
    ///
    /// # Errors
    /// A sentence when the chain cannot be read.
    pub(crate) async fn offers(
        &self,
        session: &PatientSession,
        fresh: bool,
    ) -> Result<Arc<Offers>, String> {
        let mut slot = self.offers.lock().await;
        if !fresh
            && let Some((at, offers)) = slot.as_ref()
            && at.elapsed() < OFFERS_TTL
        {
            return Ok(offers.clone());
        }
        let offers = Arc::new(session.offers().await.map_err(|e| {
            format!(
                "The providers' offers cannot be read right now ({}); reload to see them.",
                crate::error::sentence(&e).trim_end_matches('.')
            )
        })?);
        *slot = Some((Instant::now(), offers.clone()));
        Ok(offers)
    }

    /// The offers last asked that the patient has not set aside, without asking again.
    pub(crate) async fn offers_waiting(&self) -> usize {
        let aside = self.set_aside.lock().map(|s| s.clone()).unwrap_or_default();
        self.offers.lock().await.as_ref().map_or(0, |(_, o)| {
            o.offers.iter().filter(|o| !aside.contains(&o.view.relationship)).count()
        })
    }

    /// Holds the patient's session: loads the encrypted cache, starts following the
    /// chain and refreshing the records.
    async fn start_patient(&self, session: PatientSession) -> Result<(), String> {
        let session = self.detect_acting(session).await;
        let cached: Option<Records> =
            cache(&self.data_dir, session.signer()).load().map_err(|e| format!("{e}."))?;
        {
            let mut held = self.held.write().await;
            held.records = cached.unwrap_or_default();
        }
        *self.session.write().await = Some(session.clone());
        let follower = tokio::spawn(follow(self.clone(), session.clone()));
        let offers = tokio::spawn(watch_offers(self.clone(), session));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(follower.abort_handle());
            tasks.push(offers.abort_handle());
        }
        self.spawn_refresh();
        Ok(())
    }

    /// Starts refreshing the records in the background (unless one runs already).
    pub(crate) fn spawn_refresh(&self) {
        let state = self.clone();
        let task = tokio::spawn(async move { state.refresh().await });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task.abort_handle());
        }
    }

    /// Refreshes the records from the chain and every accepted relationship's
    /// gatekeeper, into the encrypted cache and memory; tells the open pages. One
    /// refresh runs at a time; a second waits for the first and then runs, so that it
    /// sees what changed meanwhile.
    pub(crate) async fn refresh(&self) {
        let Some(session) = self.session().await else { return };
        let _one_at_a_time = self.refreshing.lock().await;
        self.held.write().await.refreshing = true;
        let result = session.refresh().await;
        let sentence = {
            let mut held = self.held.write().await;
            held.refreshing = false;
            match result {
                // Locked meanwhile: keep nothing of it.
                Ok(_) if self.session.try_read().is_ok_and(|s| s.is_none()) => {
                    return;
                }
                Ok((records, problems)) => {
                    held.failure = None;
                    let sentence = format!(
                        "{} from your providers, checked against the chain.",
                        medrec_client::plural(records.count(), "record")
                    );
                    held.records = records;
                    held.problems = problems;
                    sentence
                }
                Err(e) => {
                    let text = format!("Your records could not be refreshed: {e}.");
                    held.failure = Some(text.clone());
                    text
                }
            }
        };
        self.learn_endpoints().await;
        let _ = self.live.send(Live {
            kind: "records",
            title: "Records refreshed".to_owned(),
            sentence,
            block: 0,
        });
    }

    /// Learns the gatekeeper URL of every provider the cache knows.
    async fn learn_endpoints(&self) {
        let known: Vec<(Address, String)> = self
            .held
            .read()
            .await
            .records
            .relationships
            .iter()
            .map(|r| (r.provider, r.endpoint.clone()))
            .collect();
        let mut names = self.names.write().await;
        names.endpoints.extend(known);
    }

    /// How providers are named, after asking the Registrar for any not known yet among
    /// `providers`.
    pub(crate) async fn names_for(
        &self,
        session: &PatientSession,
        summaries: &BTreeMap<RelationshipId, Summary>,
    ) -> Names {
        let unknown: Vec<Address> = {
            let names = self.names.read().await;
            summaries
                .values()
                .filter_map(|s| s.provider)
                .filter(|p| !names.endpoints.contains_key(p))
                .collect()
        };
        for p in unknown {
            if let Ok(url) = session.chain().endpoint(p).await {
                self.names.write().await.endpoints.insert(p, url);
            }
        }
        // Grants to a group name it: learn the groups granted that are not known yet.
        let granted_unknown = {
            let names = self.names.read().await;
            summaries.values().flat_map(|s| s.grants.keys()).any(|v| !names.groups.contains_key(v))
        };
        if granted_unknown && let Ok(groups) = medrec_client::care::groups(session.chain()).await {
            self.names.write().await.groups.extend(views::care::group_names(&groups));
        }
        let mut names = self.names.read().await.clone();
        names.keys = crate::keys::custodian_names(&self.data_dir);
        if let Some(a) = self.acting() {
            names.keys.insert(a.key, Names::YOU.to_owned());
        }
        names
    }

    /// The access log, fetched from the gatekeepers at most every 20 s (`fresh`: now).
    ///
    /// # Errors
    /// A sentence when a gatekeeper or the chain cannot be read.
    pub(crate) async fn access_log(
        &self,
        session: &PatientSession,
        fresh: bool,
    ) -> Result<Arc<Vec<AccessEntry>>, String> {
        let mut slot = self.access.lock().await;
        if !fresh
            && let Some((at, entries)) = slot.as_ref()
            && at.elapsed() < ACCESS_TTL
        {
            return Ok(entries.clone());
        }
        let entries = Arc::new(
            session
                .access_log(None)
                .await
                .map_err(|e| format!("The access log could not be read: {e}."))?,
        );
        *slot = Some((Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// Stops the follower and any refresh.
    /// Locks the app: forgets the unlocked session and every record held in memory, and
    /// stops following the chain; the passphrase is needed again.
    pub(crate) async fn lock(&self) {
        let _one_at_a_time = self.unlocking.lock().await;
        self.stop();
        *self.session.write().await = None;
        *self.viewer.write().await = None;
        *self.clinician.write().await = None;
        *self.researcher.write().await = None;
        *self.provider.write().await = None;
        if let Ok(mut pending) = self.pending_phrase.lock() {
            *pending = None;
        }
        *self.held.write().await = Held::default();
        *self.access.lock().await = None;
        *self.offers.lock().await = None;
        if let Ok(mut acting) = self.acting.lock() {
            *acting = None;
        }
    }

    pub(crate) fn stop(&self) {
        if let Ok(mut mining) = self.mining.lock()
            && let Some(m) = mining.take()
        {
            m.stop();
        }
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

/// Asks the gatekeepers for offers every 2 s and tells the open pages of each new one
/// (offers are kept at the gatekeepers, not on chain: no block announces them).
async fn watch_offers(state: AppState, session: PatientSession) {
    let mut known = None;
    loop {
        tell_new_offers(&state, &session, &mut known).await;
        tokio::time::sleep(OFFERS_POLL).await;
    }
}

async fn tell_new_offers(
    state: &AppState,
    session: &PatientSession,
    known: &mut Option<BTreeSet<RelationshipId>>,
) {
    let Ok(offers) = state.offers(session, true).await else { return };
    let now: BTreeSet<RelationshipId> = offers.offers.iter().map(|o| o.view.relationship).collect();
    state
        .names
        .write()
        .await
        .endpoints
        .extend(offers.offers.iter().map(|o| (o.view.provider, o.endpoint.clone())));
    if let Some(before) = known.as_ref() {
        let names = state.names_for(session, &BTreeMap::new()).await;
        for o in offers.offers.iter().filter(|o| !before.contains(&o.view.relationship)) {
            let _ = state.live.send(Live {
                kind: "notice",
                title: views::inbox::OFFER_TITLE.to_owned(),
                sentence: views::inbox::offer_sentence(&names.provider(o.view.provider)),
                block: 0,
            });
        }
    }
    *known = Some(now);
}

/// Follows the chain: every new block's notices about the patient go to the open pages
/// as they arrive; an acceptance or new data starts a refresh of the records.
async fn follow(state: AppState, session: PatientSession) {
    let chain = session.chain().clone();
    let me = session.address();
    let mut next = loop {
        match chain.head().await {
            Ok(head) => break head + 1,
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    loop {
        tokio::time::sleep(POLL).await;
        let Ok(head) = chain.head().await else { continue };
        if head < next {
            continue;
        }
        let Ok(new) = chain.notices(me, next, Some(head)).await else { continue };
        // Break-glass openings of the patient's emergency set: told at once, first.
        let Ok(opened) = session.openings(next).await else { continue };
        next = head + 1;
        let opened: Vec<_> = opened.into_iter().filter(|o| o.block <= head).collect();
        if !opened.is_empty() {
            let groups = medrec_client::care::groups(&chain).await.unwrap_or_default();
            for o in &opened {
                let group = views::care::group_name(&groups, o.group);
                let _ = state.live.send(Live {
                    kind: "notice",
                    title: views::care::OPENING_TITLE.to_owned(),
                    sentence: format!(
                        "{} {}",
                        views::care::opening_sentence(o, &group),
                        views::care::UNEXPECTED
                    ),
                    block: o.block,
                });
            }
        }
        if new.is_empty() {
            continue;
        }
        let summaries = session.relationships().await.unwrap_or_default();
        let names = state.names_for(&session, &summaries).await;
        let mut refresh = false;
        for d in &new {
            refresh |= matches!(
                d.notice,
                Notice::Status(Status::Accepted) | Notice::PointerUpdated { .. }
            );
            let item = views::inbox::describe(d, &summaries, &names);
            let _ = state.live.send(Live {
                kind: "notice",
                title: item.title,
                sentence: item.sentence,
                block: item.block,
            });
        }
        if refresh {
            state.spawn_refresh();
        }
    }
}
