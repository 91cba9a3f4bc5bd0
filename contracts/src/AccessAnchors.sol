// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Registrar} from "./Registrar.sol";

/// @title MedRec access-log anchors
/// @notice Every provider's gatekeeper appends each request it answers (allowed or
/// denied) to a hash-chained access log kept in its own database. Periodically it
/// anchors the log's head here: the hash of the last entry and the number of entries.
/// A patient who is shown an entry with a proof that a head covers it checks the head
/// against the `Anchored` event of that provider, so the provider cannot later rewrite
/// or drop entries it has anchored.
/// @dev One transaction per period, however many requests the period saw. The latest
/// anchor of each provider is kept in storage (two slots) so that anyone can read it
/// without scanning logs; every anchor is in an `Anchored` event, which is what a proof
/// names (by block). Nothing about a patient or a record reaches the chain: a head is
/// a hash over entries that stay with the provider.
contract AccessAnchors {
    /// @notice A provider's latest anchor as stored.
    struct Latest {
        /// @dev Hash of the last entry covered.
        bytes32 head;
        /// @dev Number of entries covered (the log's size when anchored).
        uint64 size;
        /// @dev Block in which the anchor was made.
        uint64 blockNumber;
    }

    /// @notice The registrar that says who is a provider.
    Registrar public immutable registrar;

    mapping(address => Latest) private _latest;

    // ----- errors -------------------------------------------------------------------

    /// @notice Only a registered provider may anchor its access log; `caller` is not one.
    error NotProvider(address caller);
    /// @notice The log must have grown since the caller's last anchor: `size` does not
    /// exceed `anchoredSize`.
    error SizeNotGrown(uint64 anchoredSize, uint64 size);
    /// @notice The head of a non-empty log cannot be the zero hash.
    error EmptyHead();

    // ----- events -------------------------------------------------------------------

    /// @notice Provider `provider` anchored its access log: its first `size` entries end
    /// with the entry hashing to `head`.
    event Anchored(address indexed provider, uint64 size, bytes32 head);

    /// @notice Deploys the anchors contract.
    /// @param registrar_ The registrar that certifies providers.
    constructor(Registrar registrar_) {
        registrar = registrar_;
    }

    /// @notice Anchors the caller's access log: its first `size` entries end with the
    /// entry hashing to `head`. Replaces the caller's latest anchor.
    /// @dev Only registered providers; `size` must exceed the caller's last anchored size.
    /// @param head Hash of the log's last entry (entry `size`).
    /// @param size Number of entries in the log.
    function anchor(bytes32 head, uint64 size) external {
        if (!registrar.isProvider(msg.sender)) revert NotProvider(msg.sender);
        if (head == bytes32(0)) revert EmptyHead();
        uint64 anchored = _latest[msg.sender].size;
        if (size <= anchored) revert SizeNotGrown(anchored, size);
        _latest[msg.sender] = Latest(head, size, uint64(block.number));
        emit Anchored(msg.sender, size, head);
    }

    /// @notice The latest anchor of `provider` (all zero if it never anchored).
    /// @param provider The provider's account.
    /// @return head Hash of the last entry covered.
    /// @return size Number of entries covered.
    /// @return blockNumber Block in which the anchor was made.
    function latest(address provider) external view returns (bytes32 head, uint64 size, uint64 blockNumber) {
        Latest storage l = _latest[provider];
        return (l.head, l.size, l.blockNumber);
    }
}
