//! The workflows against a real chain (the devchain, in process): every step through
//! the library, and every revert as the contract's typed error.

use alloy::primitives::{B256, keccak256};
use medrec_client::{
    Chain, ChainSpec, Error,
    patient::{PatientSession, Target, Window},
    privacy::{self, RecordsSecret},
    provider::registration::{Registration, register_provider, register_self},
    researcher, tx,
    viewer::ViewerSession,
};
use medrec_contracts::ContractError;
use medrec_primitives::Status;
use medrec_testkit::medrec::{DELEGATE, INSTITUTION, Medrec, PATIENT, PROVIDER, STRANGER, VIEWER};

mod observer;

async fn connect(m: &Medrec) -> Chain {
    over(&m.node, &m.at).await
}

/// The chain `node` serves in process, with the MedRec contracts deployed at `at`.
async fn over(
    node: &medrec_devchain::node::Node,
    at: &medrec_devchain::deploy::Deployment,
) -> Chain {
    let spec = ChainSpec {
        rpc_url: "in-process".to_owned(),
        registrar: at.registrar,
        relationships: at.relationships,
        anchors: at.anchors,
        from_block: 0,
    };
    Chain::over(node.rpc_client(), spec).await.unwrap()
}

/// A free-gas devchain (zero-price consortium chain) in process.
fn free_node() -> medrec_devchain::node::Node {
    use medrec_devchain::{
        chain::{Chain as DevChain, ChainConfig},
        node::{Node, SealMode},
    };
    let config = ChainConfig { free_gas: true, ..ChainConfig::default() };
    Node::new(DevChain::new(config).unwrap(), SealMode::Instant)
}

/// The patient creates the [`PATIENT`]–[`DELEGATE`] relationship as taking
/// [`PROVIDER`]'s offer does: the provider's address encrypted under the relationship's
/// key, which only the patient's secret gives.
async fn create_encrypted(m: &Medrec, chain: &Chain) {
    let patient = m.accounts[PATIENT].signer();
    let secret = RecordsSecret::of(&patient);
    let identity =
        privacy::encrypt_identity(&secret.relationship_key(m.relationship()), m.address(PROVIDER));
    let rels = chain.relationships_as(patient);
    let create =
        rels.create(m.address(DELEGATE), keccak256("query"), keccak256("data"), identity.into());
    tx::send(&create, "creating the relationship").await.unwrap();
}

#[tokio::test]
async fn a_patient_reads_its_providers_shares_them_sealed_and_revokes() {
    let m = Medrec::new().await;
    let chain = connect(&m).await;
    assert_eq!(chain.chain_id(), 31337);
    create_encrypted(&m, &chain).await;

    // The patient's own secret names the provider; the chain does not.
    let me = PatientSession::with_signer(chain.clone(), m.accounts[PATIENT].signer());
    let mine = me.relationships().await.unwrap();
    assert_eq!(mine[&m.relationship()].provider, Some(m.address(PROVIDER)));
    assert_eq!(mine[&m.relationship()].status, Some(Status::Accepted), "created accepted");
    let by_provider = Target::Provider(m.address(PROVIDER));
    let chosen = me.choose(&by_provider).await.unwrap();
    assert_eq!((chosen.id, chosen.delegate), (m.relationship(), m.address(DELEGATE)));
    let by_id = Target::Id(m.relationship().0.to_string()[..10].to_owned());

    // The viewer publishes its encryption key; a grant then names the provider for it.
    let viewer = ViewerSession::new(chain.clone(), m.accounts[VIEWER].signer());
    assert!(viewer.publish_encryption_key().await.unwrap());
    assert!(!viewer.publish_encryption_key().await.unwrap(), "once is enough");
    let grant = me.share(&by_id, m.address(VIEWER), None, Window::default()).await.unwrap();
    assert_eq!(grant.pointers, vec![0]);
    assert!(grant.expires_at > grant.not_before && grant.not_before == 0);
    let shared = viewer.shared().await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].viewable(), vec![0]);
    assert_eq!(shared[0].provider, Some(m.address(PROVIDER)), "opened from the sealed key");
    // A stranger reading the same chain learns no provider.
    let stranger =
        medrec_client::viewer::shared_with(&chain, m.address(VIEWER), None).await.unwrap();
    assert_eq!(stranger[0].provider, None);

    me.revoke(&by_id, m.address(VIEWER)).await.unwrap();
    let again = me.revoke(&by_id, m.address(VIEWER)).await.unwrap_err();
    assert!(matches!(again, Error::Invalid(ref s) if s.contains("no access")), "{again}");

    let (_, opted) = me.set_research(&by_id, true).await.unwrap();
    assert!(opted.is_some());
    let (_, unchanged) = me.set_research(&by_id, true).await.unwrap();
    assert!(unchanged.is_none(), "already opted in: nothing is sent");

    me.answer(&by_id, Status::Deleted).await.unwrap();
    let refused = me.answer(&by_id, Status::Accepted).await.unwrap_err();
    assert!(
        matches!(refused.contract_error(), Some(ContractError::InvalidTransition { .. })),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("cannot go from deleted to accepted"), "{refused}");

    let none = me.answer(&Target::Provider(m.address(STRANGER)), Status::Accepted).await;
    assert!(matches!(none, Err(Error::Invalid(ref s)) if s.contains("no relationship")));
}

#[tokio::test]
async fn keys_rotate_custodians_act_within_their_rights_and_guardians_recover() {
    use alloy::signers::local::PrivateKeySigner;
    use medrec_client::patient::keys::{Guardians, approve_recovery};
    use medrec_contracts::Rights;
    let m = Medrec::new().await;
    let chain = connect(&m).await;
    create_encrypted(&m, &chain).await;
    let me = PatientSession::with_signer(chain.clone(), m.accounts[PATIENT].signer());
    let by_id = Target::Id(m.relationship().0.to_string());
    let account = m.address(PATIENT);
    let fund = |to| {
        let from = chain.sender(m.accounts[INSTITUTION].signer());
        async move {
            let wei =
                alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(18u64));
            tx::fund(&from, to, wei, "a key").await.unwrap();
        }
    };

    // A spouse who may see and share, not decide.
    let spouse = PrivateKeySigner::random();
    fund(spouse.address()).await;
    me.add_custodian(&spouse, Rights::SEE | Rights::SHARE, 0).await.unwrap();
    let as_spouse = PatientSession::acting(chain.clone(), spouse.clone(), account, None);
    as_spouse.share(&by_id, m.address(VIEWER), None, Window::default()).await.unwrap();
    let refused = as_spouse.set_research(&by_id, true).await.unwrap_err();
    assert!(
        matches!(refused.contract_error(), Some(ContractError::KeyNotAllowed { .. })),
        "{refused:?}"
    );
    // Without the patient's secret the provider's name stays encrypted.
    assert_eq!(as_spouse.relationships().await.unwrap()[&m.relationship()].provider, None);
    // The grant records who acted.
    let notices = chain.notices(account, 0, None).await.unwrap();
    let granted =
        notices.iter().rfind(|d| matches!(d.notice, medrec_chain::inbox::Notice::Granted { .. }));
    assert_eq!(granted.unwrap().actor, Some(spouse.address()));

    // Rotation: the old key is refused at once, the new one keeps everything.
    let new_key = PrivateKeySigner::random();
    fund(new_key.address()).await;
    let (moved, _) = me.rotate(new_key.clone()).await.unwrap();
    assert_eq!(moved.address(), account, "the account stays");
    let old = me.set_research(&by_id, true).await.unwrap_err();
    assert!(matches!(old.contract_error(), Some(ContractError::KeyNotAllowed { .. })), "{old:?}");
    assert_eq!(
        moved.relationships().await.unwrap()[&m.relationship()].provider,
        Some(m.address(PROVIDER))
    );
    moved.set_research(&by_id, true).await.unwrap();

    // Guardians: two of three move the account after the time-lock; the patient may veto.
    let guardians: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let list = Guardians::new(guardians.iter().map(|g| g.address()).collect(), 2).unwrap();
    moved.set_guardians(&list).await.unwrap();
    let recovered = PrivateKeySigner::random();
    fund(recovered.address()).await;
    let sender = m.accounts[STRANGER].signer();
    let approve = |nonce| -> Vec<alloy::primitives::Bytes> {
        guardians[..2]
            .iter()
            .map(|g| approve_recovery(&chain, g, account, recovered.address(), nonce).unwrap())
            .collect()
    };
    let one = approve(0)[..1].to_vec();
    let few = chain.start_recovery(sender.clone(), account, &recovered, &list, one).await;
    assert!(matches!(
        few.unwrap_err().contract_error(),
        Some(ContractError::NotEnoughGuardians { .. })
    ));
    chain.start_recovery(sender.clone(), account, &recovered, &list, approve(0)).await.unwrap();
    let waiting = chain.recovery(account).await.unwrap();
    assert_eq!(waiting.new_key, recovered.address());
    moved.veto_recovery().await.unwrap();
    assert_eq!(chain.recovery(account).await.unwrap().new_key, alloy::primitives::Address::ZERO);
    // The vetoed approvals are spent: new ones for the next nonce.
    let stale = chain.start_recovery(sender.clone(), account, &recovered, &list, approve(0)).await;
    assert!(stale.is_err());
    chain.start_recovery(sender.clone(), account, &recovered, &list, approve(1)).await.unwrap();
    let early = chain.complete_recovery(sender.clone(), account, new_key.address()).await;
    assert!(matches!(
        early.unwrap_err().contract_error(),
        Some(ContractError::RecoveryLocked { .. })
    ));
    // Past the lock (instant blocks run a little ahead of the wall clock: with room), and
    // a block at the new time, as a live chain would have.
    m.node.increase_time(72 * 3600 + 600);
    fund(PrivateKeySigner::random().address()).await;
    chain.complete_recovery(sender, account, new_key.address()).await.unwrap();
    let back = PatientSession::acting(chain.clone(), recovered, account, None);
    back.set_research(&by_id, false).await.unwrap();
    assert!(moved.set_research(&by_id, true).await.is_err(), "the lost key is retired");
}

#[tokio::test]
async fn providers_register_through_an_institution_and_researchers_are_admitted_by_vote() {
    let m = Medrec::new().await;
    let chain = connect(&m).await;
    let (institution, stranger) = (m.accounts[INSTITUTION].signer(), m.accounts[STRANGER].signer());

    let not_yet = register_self(&chain, &stranger, "Stranger", "https://s", B256::ZERO).await;
    assert_eq!(not_yet.unwrap(), Registration::NeedsInstitution);
    let refused =
        register_provider(&chain, &stranger, m.address(VIEWER), "V", "https://v", B256::ZERO).await;
    assert!(
        matches!(refused, Err(Error::Invalid(ref s)) if s.contains("not a certified institution"))
    );
    let bad = register_provider(&chain, &institution, m.address(STRANGER), "S", "gk", B256::ZERO);
    assert!(bad.await.unwrap_err().to_string().contains("http:// or https://"));

    register_provider(&chain, &institution, m.address(STRANGER), "S", "https://s", B256::ZERO)
        .await
        .unwrap();
    assert_eq!(chain.endpoint(m.address(STRANGER)).await.unwrap(), "https://s");
    let same = register_self(&chain, &stranger, "S", "https://s", B256::ZERO).await.unwrap();
    assert_eq!(same, Registration::AlreadyRegistered);
    let moved = register_self(&chain, &stranger, "S", "https://t", B256::ZERO).await.unwrap();
    assert!(matches!(moved, Registration::EndpointUpdated(_)), "{moved:?}");
    assert_eq!(chain.endpoint(m.address(STRANGER)).await.unwrap(), "https://t");
    // Registering it twice is the contract's own refusal, typed.
    let twice =
        register_provider(&chain, &institution, m.address(STRANGER), "S", "https://s", B256::ZERO)
            .await
            .unwrap_err();
    assert!(
        matches!(twice.contract_error(), Some(ContractError::ProviderExists { .. })),
        "{twice:?}"
    );

    let researcher = m.address(VIEWER);
    let admitted = researcher::admit(&chain, &institution, researcher).await.unwrap();
    assert!(admitted.admitted, "one institution is a majority of one");
    let again = researcher::admit(&chain, &institution, researcher).await.unwrap_err();
    assert!(again.to_string().contains("already an admitted research entity"), "{again}");
    let not_voter = researcher::admit(&chain, &stranger, m.address(PATIENT)).await.unwrap_err();
    assert!(not_voter.to_string().contains("not a certified institution"), "{not_voter}");
    assert!(researcher::owned(&chain, Some(researcher)).await.unwrap().is_empty());
}

#[tokio::test]
async fn groups_and_break_glass_through_the_library() {
    use medrec_client::care::{ClinicianSession, EmergencyReason, InstitutionSession, groups};
    let m = Medrec::new().await;
    let chain = connect(&m).await;
    let institution = InstitutionSession::new(chain.clone(), m.accounts[INSTITUTION].signer());
    let (er, _) = institution.create_group("Emergency departments", true).await.unwrap();
    let (pharmacists, _) = institution.create_group("Pharmacists", false).await.unwrap();
    assert_eq!((er, pharmacists), (1, 2));
    let clinician = ClinicianSession::new(chain.clone(), m.accounts[STRANGER].signer());
    assert!(clinician.emergency_groups().await.unwrap().is_empty());
    let none = clinician.break_glass(m.address(PATIENT), None, EmergencyReason::Unconscious);
    assert!(none.await.unwrap_err().to_string().contains("no emergency group"));
    institution.add_member(er, m.address(STRANGER)).await.unwrap();
    institution.add_member(pharmacists, m.address(VIEWER)).await.unwrap();
    let listed = groups(&chain).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].name.as_str(), listed[0].emergency), ("Emergency departments", true));
    assert_eq!(clinician.emergency_groups().await.unwrap()[0].id, er);
    // Only the managing institution changes a group: the contract's refusal, typed.
    let other = InstitutionSession::new(chain.clone(), m.accounts[STRANGER].signer());
    let refused = other.add_member(er, m.address(VIEWER)).await.unwrap_err();
    assert!(
        matches!(refused.contract_error(), Some(ContractError::NotGroupManager { .. })),
        "{refused:?}"
    );

    // The patient shares a relationship with the pharmacists' group.
    create_encrypted(&m, &chain).await;
    let me = PatientSession::with_signer(chain.clone(), m.accounts[PATIENT].signer());
    let target = Target::Provider(m.address(PROVIDER));
    let grant = me.share_with_group(&target, pharmacists, None, Window::default()).await.unwrap();
    assert_eq!(grant.viewer, medrec_client::care::group_address(pharmacists));
    assert!(me.share_with_group(&target, 9, None, Window::default()).await.is_err());

    // Break-glass: allowed by default, recorded for the patient, refusable.
    assert!(me.break_glass_allowed().await.unwrap());
    let opened =
        clinician.break_glass(m.address(PATIENT), None, EmergencyReason::LifeThreatening).await;
    let opened = opened.unwrap();
    assert_eq!((opened.group, opened.reason), (er, EmergencyReason::LifeThreatening));
    let seen = me.openings(0).await.unwrap();
    assert_eq!(seen.len(), 1);
    let mine = clinician.openings().await.unwrap();
    assert_eq!(mine.len(), 1, "the clinician reads its own openings back");
    assert_eq!((mine[0].patient, mine[0].expires_at), (m.address(PATIENT), opened.expires_at));
    assert_eq!((seen[0].clinician, seen[0].expires_at), (m.address(STRANGER), opened.expires_at));
    assert!(me.set_break_glass(false).await.unwrap().is_some());
    assert!(me.set_break_glass(false).await.unwrap().is_none(), "already refused");
    let ended = me.openings(0).await.unwrap();
    assert_eq!(ended[0].state(0), medrec_client::care::OpeningState::Ended, "{ended:?}");
    assert!(!me.break_glass_allowed().await.unwrap());
    let refused =
        clinician.break_glass(m.address(PATIENT), Some(er), EmergencyReason::Unconscious).await;
    let refused = refused.unwrap_err();
    assert!(
        matches!(refused.contract_error(), Some(ContractError::BreakGlassRefused { .. })),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("refused break-glass"), "{refused}");
}

#[tokio::test]
async fn on_a_free_gas_chain_a_key_nobody_funded_acts_at_price_zero() {
    use alloy::{primitives::U256, providers::Provider, signers::local::PrivateKeySigner};
    let node = free_node();
    let chain = over(&node, &node.with(|c| c.deployment()).unwrap()).await;
    assert!(chain.free_gas(), "the node asks a gas price of 0");
    let nobody = PrivateKeySigner::random();
    assert_eq!(chain.reader().get_balance(nobody.address()).await.unwrap(), U256::ZERO);
    let me = PatientSession::with_signer(chain.clone(), nobody.clone());
    let tx = me.set_break_glass(false).await.unwrap().expect("a transaction");
    let receipt = chain.reader().get_transaction_receipt(tx).await.unwrap().unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    assert!(!me.break_glass_allowed().await.unwrap());
    // Twice from the same key: the nonce is right without any funding.
    assert!(me.set_break_glass(true).await.unwrap().is_some());
    assert_eq!(chain.reader().get_balance(nobody.address()).await.unwrap(), U256::ZERO);

    // A chain that asks a price is not taken for a free one.
    let m = Medrec::new().await;
    assert!(!connect(&m).await.free_gas());
}

#[tokio::test]
async fn nobody_is_funded_on_a_free_gas_chain() {
    use alloy::{primitives::U256, providers::Provider, signers::local::PrivateKeySigner};
    let node = free_node();
    let funder = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(PrivateKeySigner::random()))
        .connect_client(node.rpc_client());
    let account = PrivateKeySigner::random().address();
    let sent = tx::fund(&funder, account, U256::from(10u64).pow(U256::from(17u64)), "a patient");
    assert!(sent.await.unwrap().is_none(), "no transfer, no trail");
    assert_eq!(funder.get_balance(account).await.unwrap(), U256::ZERO);
}

#[tokio::test]
async fn a_wallet_session_signs_with_the_key_that_acts_after_a_rotation() {
    use medrec_wallet::{Passphrase, ScryptParams, Wallet, WordCount};
    let node = free_node();
    let chain = over(&node, &node.with(|c| c.deployment()).unwrap()).await;
    let dir = std::env::temp_dir().join(format!("medrec-client-rotated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pass = Passphrase::new("rotation").unwrap();
    let wallet = Wallet::create(&dir, WordCount::Twelve, &pass, ScryptParams::light()).unwrap();
    let me = PatientSession::new(chain.clone(), &wallet);
    assert_eq!(me.signer().address(), wallet.address(), "key 0 acts before any rotation");
    me.set_break_glass(false).await.unwrap();
    // The account moves to key 1, and the wallet records it.
    let (_, _) = me.rotate(wallet.account_key(1).unwrap()).await.unwrap();
    wallet.set_acting_index(1).unwrap();
    let again = PatientSession::new(chain.clone(), &wallet);
    assert_eq!(again.signer().address(), wallet.account_key(1).unwrap().address());
    assert_eq!(again.address(), wallet.address(), "the same account");
    assert!(again.set_break_glass(true).await.unwrap().is_some(), "the new key acts");
    let refused = me.set_break_glass(false).await.unwrap_err();
    assert!(
        matches!(refused.contract_error(), Some(ContractError::KeyNotAllowed { .. })),
        "{refused:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
