//! `check_anchor` against anchors made through the real contract on the devchain.

use alloy::primitives::{B256, keccak256};
use medrec_chain::anchors::{AnchorCheckError, AnchorClaim, check_anchor};
use medrec_contracts::AccessAnchors;
use medrec_testkit::medrec::{Medrec, PROVIDER, STRANGER};

/// `PROVIDER` anchors `(root, size)`; returns the block it landed in.
async fn anchor(m: &Medrec, root: B256, size: u64) -> u64 {
    let receipt = AccessAnchors::new(m.at.anchors, m.wallet(PROVIDER))
        .anchor(root, size)
        .send()
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status(), "the anchor transaction succeeded");
    receipt.block_number.expect("mined in a block")
}

#[tokio::test]
async fn an_anchor_checks_out_exactly_as_emitted_and_nothing_else_does() {
    let m = Medrec::new().await;
    let (provider, chain) = (m.address(PROVIDER), m.reader());
    let (root, size) = (keccak256("root 5"), 5);
    let block = anchor(&m, root, size).await;
    let claim = AnchorClaim { size, root, block };

    check_anchor(&chain, m.at.anchors, provider, claim).await.expect("the anchor is on chain");

    // The same block, but a root or size the provider did not anchor.
    for wrong in [AnchorClaim { size: 4, ..claim }, AnchorClaim { root: keccak256("x"), ..claim }] {
        assert_eq!(
            check_anchor(&chain, m.at.anchors, provider, wrong).await,
            Err(AnchorCheckError::Different {
                provider,
                block,
                anchored_size: size,
                anchored_root: root
            })
        );
    }
    // Another block, another provider, another contract.
    let earlier = AnchorClaim { block: block - 1, ..claim };
    assert_eq!(
        check_anchor(&chain, m.at.anchors, provider, earlier).await,
        Err(AnchorCheckError::NotAnchored { provider, block: block - 1 })
    );
    let stranger = m.address(STRANGER);
    assert_eq!(
        check_anchor(&chain, m.at.anchors, stranger, claim).await,
        Err(AnchorCheckError::NotAnchored { provider: stranger, block })
    );
    assert_eq!(
        check_anchor(&chain, m.at.registrar, provider, claim).await,
        Err(AnchorCheckError::NotAnchored { provider, block })
    );
    // A block that does not exist yet.
    let future = AnchorClaim { block: block + 10, ..claim };
    assert_eq!(
        check_anchor(&chain, m.at.anchors, provider, future).await,
        Err(AnchorCheckError::BlockNotYetMined { block: block + 10, head: block })
    );
}

#[tokio::test]
async fn every_anchor_of_a_growing_log_stays_checkable_at_its_own_block() {
    let m = Medrec::new().await;
    let (provider, chain) = (m.address(PROVIDER), m.reader());
    let first = AnchorClaim { size: 3, root: keccak256("root 3"), block: 0 };
    let first = AnchorClaim { block: anchor(&m, first.root, first.size).await, ..first };
    let second = AnchorClaim { size: 9, root: keccak256("root 9"), block: 0 };
    let second = AnchorClaim { block: anchor(&m, second.root, second.size).await, ..second };
    assert!(second.block > first.block);
    for claim in [first, second] {
        check_anchor(&chain, m.at.anchors, provider, claim).await.expect("still on chain");
    }
    // The contract keeps only the latest, but the first stays provable from its event.
    let latest =
        AccessAnchors::new(m.at.anchors, &chain).latest(provider).call().await.expect("view");
    assert_eq!((latest.head, latest.size, latest.blockNumber), (second.root, 9, second.block));
    // The first anchor's claim moved to the second's block does not hold.
    assert!(matches!(
        check_anchor(&chain, m.at.anchors, provider, AnchorClaim { block: second.block, ..first })
            .await,
        Err(AnchorCheckError::Different { anchored_size: 9, .. })
    ));
}

#[tokio::test]
async fn a_node_that_does_not_answer_is_an_rpc_error_not_a_verdict() {
    let m = Medrec::new().await;
    // Nothing listens on port 9 (discard) of this machine's loopback.
    let dead = alloy::providers::ProviderBuilder::new()
        .connect_http("http://127.0.0.1:9".parse().unwrap());
    let claim = AnchorClaim { size: 1, root: keccak256("h"), block: 1 };
    let err = check_anchor(&dead, m.at.anchors, m.address(PROVIDER), claim).await.unwrap_err();
    assert!(matches!(err, AnchorCheckError::Rpc(_)), "{err:?}");
    assert!(err.to_string().starts_with("the chain node could not be asked"));
}
