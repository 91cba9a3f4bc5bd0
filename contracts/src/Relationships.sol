// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Registrar} from "./Registrar.sol";

/// @title MedRec Patient–Provider Relationships and Summaries
/// @notice Every patient–provider relationship (PPR) lives in this one contract: its
/// status in the patient's summary, its data pointers, its viewer table, the patient's
/// research consent, the bounty attached to every pointer update, and break-glass
/// openings of a patient's emergency set by emergency clinicians.
/// @dev Gas is the design constraint (see contracts/README.md):
/// - A relationship is one storage slot, addressed by
///   `relId = keccak256(abi.encode(patient, delegate))`, where `delegate` is an address
///   the provider uses for this relationship only. Each party names the relationship by
///   the other party's address, so the contract authenticates the patient (or the
///   delegate) by recomputing the id: no storage read is needed to know who is who.
/// - A viewer grant is one slot. Revoking clears it (and earns the clearing refund).
/// - Pointer contents (query commitment, data hash, update time) and bounty owners are
///   recorded in events, which are part of the chain's receipts: nothing reads them on
///   chain, and storing them would cost 22,100 gas per pointer and per bounty.
/// - A participant's summary is the set of relationships whose creation event names
///   it (indexed topics), each with the status held in storage.
contract Relationships {
    /// @notice Status of a relationship in the patient's summary.
    enum Status {
        None,
        New,
        UpdatePending,
        Accepted,
        Rejected,
        Deleted
    }

    /// @notice A relationship as stored: one slot.
    struct Relationship {
        /// @dev The certified provider that created the relationship.
        address provider;
        Status status;
        /// @dev Number of data pointers; ids run from 0 to pointerCount - 1.
        uint8 pointerCount;
        /// @dev Number of pointers the patient has accepted; viewers see only these.
        uint8 acceptedCount;
        /// @dev Whether the patient lets this relationship's data feed research bounties.
        bool researchOptIn;
        /// @dev Timestamp of the creation or of the last pointer change.
        uint40 updatedAt;
        /// @dev Number of pointer changes so far; the next bounty's sequence number.
        uint24 updates;
    }

    /// @notice Why an emergency clinician broke the glass (a code, never free text: the
    /// chain holds no medical data).
    enum EmergencyReason {
        None,
        /// The patient is unconscious or cannot communicate.
        Unconscious,
        /// A life-threatening condition needs treatment now.
        LifeThreatening,
        /// The patient cannot give consent for another reason (confusion, sedation).
        CannotConsent
    }

    /// @notice A viewer grant as stored: one slot.
    struct Grant {
        /// @dev Bit i set: the viewer may run pointer i.
        uint128 pointers;
        /// @dev The grant is valid from this timestamp (inclusive).
        uint40 notBefore;
        /// @dev The grant is valid until this timestamp (exclusive).
        uint40 expiresAt;
    }

    /// @notice Most pointers a relationship can hold (the width of a grant's pointer set).
    uint256 public constant MAX_POINTERS = 128;

    /// @notice How long a break-glass opening lasts, from its block's timestamp.
    uint40 public constant BREAK_GLASS_SECONDS = 4 hours;

    /// @notice The registrar that says who is a provider.
    Registrar public immutable registrar;

    mapping(bytes32 => Relationship) private _relationships;
    mapping(bytes32 => mapping(address => Grant)) private _grants;

    /// @notice Whether a patient refused break-glass access (default: allowed).
    mapping(address => bool) public breakGlassRefused;

    // ----- errors -------------------------------------------------------------------

    /// @notice Only a registered provider may create a relationship; `caller` is not one.
    error NotProvider(address caller);
    /// @notice A patient, delegate or viewer address must not be zero.
    error ZeroAddress();
    /// @notice The delegate must be an address of the provider's, not the patient's.
    error DelegateIsPatient();
    /// @notice A query commitment, data hash or bounty commitment must not be zero.
    error ZeroHash();
    /// @notice A relationship with this patient and delegate already exists.
    error RelationshipExists(bytes32 relId);
    /// @notice No relationship with this id exists for the caller (wrong party or delegate).
    error UnknownRelationship(bytes32 relId);
    /// @notice The relationship was rejected or deleted; it takes no more changes.
    error RelationshipClosed(bytes32 relId, Status status);
    /// @notice The patient cannot move the relationship from `from` to `to`.
    error InvalidTransition(bytes32 relId, Status from, Status to);
    /// @notice The relationship already holds MAX_POINTERS pointers.
    error TooManyPointers(bytes32 relId);
    /// @notice The relationship has no pointer with this id.
    error UnknownPointer(bytes32 relId, uint256 pointerId);
    /// @notice A grant must name at least one pointer.
    error EmptyPointerSet();
    /// @notice A grant's window must end after it starts and after now.
    error InvalidWindow(uint40 notBefore, uint40 expiresAt);
    /// @notice The viewer holds no grant on this relationship.
    error NoSuchGrant(bytes32 relId, address viewer);
    /// @notice Only a member of an emergency group may break the glass, as that group.
    error NotEmergencyMember(uint256 group, address caller);
    /// @notice The patient refused break-glass access.
    error BreakGlassRefused(address patient);
    /// @notice A break-glass must state one of the reasons.
    error NoReason();

    // ----- events -------------------------------------------------------------------

    /// @notice Provider `provider` created relationship `relId` with `patient`, acting
    /// through `delegate` from now on.
    event RelationshipCreated(
        bytes32 indexed relId, address indexed patient, address indexed provider, address delegate
    );
    /// @notice The relationship's status in the patient's summary is now `status`.
    event StatusChanged(bytes32 indexed relId, Status status);
    /// @notice Pointer `pointerId` was added: its query text hashes to `queryCommitment`
    /// and its data to `dataHash`.
    event PointerAdded(bytes32 indexed relId, uint256 pointerId, bytes32 queryCommitment, bytes32 dataHash);
    /// @notice Pointer `pointerId` now returns data hashing to `dataHash`.
    event PointerUpdated(bytes32 indexed relId, uint256 pointerId, bytes32 dataHash);
    /// @notice A bounty query (text hashing to `commitment`) came with pointer change
    /// `seq` of `relId`; `owner`, the miner of this block, owns it.
    event BountyPosted(bytes32 indexed relId, address indexed owner, uint256 seq, bytes32 commitment);
    /// @notice The patient granted `viewer` the pointer set `pointers` from `notBefore`
    /// until `expiresAt`.
    event ViewerGranted(
        bytes32 indexed relId, address indexed viewer, uint128 pointers, uint40 notBefore, uint40 expiresAt
    );
    /// @notice The patient revoked every grant of `viewer`.
    event ViewerRevoked(bytes32 indexed relId, address indexed viewer);
    /// @notice The patient opted this relationship in to (or out of) research bounties.
    event ResearchConsentChanged(bytes32 indexed relId, bool optedIn);
    /// @notice The patient allowed (or refused) break-glass access to their emergency set.
    event BreakGlassSettingChanged(address indexed patient, bool allowed);
    /// @notice Emergency clinician `clinician`, a member of emergency group `group`,
    /// opened `patient`'s emergency set for `reason` until `expiresAt`.
    event BreakGlass(
        address indexed patient, address indexed clinician, uint256 indexed group, EmergencyReason reason, uint40 expiresAt
    );

    /// @notice Deploys the relationships contract.
    /// @param registrar_ The registrar that certifies providers.
    constructor(Registrar registrar_) {
        registrar = registrar_;
    }

    // ----- provider side ------------------------------------------------------------

    /// @notice Creates a relationship with `patient` and its first data pointer (id 0).
    /// Sets the status to New in the patient's summary.
    /// @dev Only registered providers.
    /// @param patient The patient's address.
    /// @param delegate The address the provider uses for this relationship only.
    /// @param queryCommitment Hash of the pointer's query text, which stays with the provider.
    /// @param dataHash Hash of the data the query returns.
    /// @return relId The relationship id, `keccak256(abi.encode(patient, delegate))`.
    function create(address patient, address delegate, bytes32 queryCommitment, bytes32 dataHash)
        external
        returns (bytes32 relId)
    {
        if (!registrar.isProvider(msg.sender)) revert NotProvider(msg.sender);
        if (patient == address(0) || delegate == address(0)) revert ZeroAddress();
        if (delegate == patient) revert DelegateIsPatient();
        if (queryCommitment == bytes32(0) || dataHash == bytes32(0)) revert ZeroHash();
        relId = relationshipId(patient, delegate);
        Relationship storage r = _relationships[relId];
        if (r.status != Status.None) revert RelationshipExists(relId);
        _relationships[relId] = Relationship(msg.sender, Status.New, 1, 0, false, uint40(block.timestamp), 0);
        emit RelationshipCreated(relId, patient, msg.sender, delegate);
        emit StatusChanged(relId, Status.New);
        emit PointerAdded(relId, 0, queryCommitment, dataHash);
    }

    /// @notice Adds a data pointer, with the bounty query that every change carries.
    /// An accepted relationship becomes UpdatePending.
    /// @dev Only the relationship's delegate.
    /// @param patient The patient of the relationship.
    /// @param queryCommitment Hash of the new pointer's query text.
    /// @param dataHash Hash of the data it returns.
    /// @param bounty Commitment to the bounty query's canonical text.
    /// @return pointerId The new pointer's id.
    function addPointer(address patient, bytes32 queryCommitment, bytes32 dataHash, bytes32 bounty)
        external
        returns (uint256 pointerId)
    {
        if (queryCommitment == bytes32(0) || dataHash == bytes32(0) || bounty == bytes32(0)) revert ZeroHash();
        bytes32 relId = relationshipId(patient, msg.sender);
        Relationship memory r = _openForProvider(relId);
        pointerId = r.pointerCount;
        if (pointerId == MAX_POINTERS) revert TooManyPointers(relId);
        r.pointerCount = uint8(pointerId + 1);
        _changed(relId, r, bounty);
        emit PointerAdded(relId, pointerId, queryCommitment, dataHash);
    }

    /// @notice Records new data behind a pointer, with the bounty query that every
    /// change carries. An accepted relationship becomes UpdatePending.
    /// @dev Only the relationship's delegate.
    /// @param patient The patient of the relationship.
    /// @param pointerId The pointer.
    /// @param dataHash Hash of the data the pointer's query now returns.
    /// @param bounty Commitment to the bounty query's canonical text.
    function updatePointer(address patient, uint256 pointerId, bytes32 dataHash, bytes32 bounty) external {
        if (dataHash == bytes32(0) || bounty == bytes32(0)) revert ZeroHash();
        bytes32 relId = relationshipId(patient, msg.sender);
        Relationship memory r = _openForProvider(relId);
        if (pointerId >= r.pointerCount) revert UnknownPointer(relId, pointerId);
        _changed(relId, r, bounty);
        emit PointerUpdated(relId, pointerId, dataHash);
    }

    // ----- patient side -------------------------------------------------------------

    /// @notice Accepts a new relationship or a pending update into the caller's record.
    /// @dev Only the patient.
    /// @param delegate The relationship's delegate.
    function accept(address delegate) external {
        _transition(delegate, Status.Accepted);
    }

    /// @notice Rejects a new relationship or a pending update; the relationship closes.
    /// @dev Only the patient.
    /// @param delegate The relationship's delegate.
    function reject(address delegate) external {
        _transition(delegate, Status.Rejected);
    }

    /// @notice Deletes the relationship from the caller's summary; it closes for good.
    /// @dev Only the patient.
    /// @param delegate The relationship's delegate.
    function remove(address delegate) external {
        _transition(delegate, Status.Deleted);
    }

    /// @notice Lets `viewer` run the pointers in `pointers` from `notBefore` until
    /// `expiresAt`. Replaces any earlier grant to the same viewer.
    /// @dev Only the patient: the grant is stored under the id derived from the caller,
    /// so no one else can write it. The relationship's status is not read here (that
    /// read would cost 2,100 gas of a 48,000 budget); a grant takes effect only while
    /// the relationship is accepted, which `canView` and the consent index check.
    /// @param delegate The relationship's delegate.
    /// @param viewer The address being granted access.
    /// @param pointers Bit i set: pointer i may be run.
    /// @param notBefore Start of validity (0 = now).
    /// @param expiresAt End of validity (exclusive); type(uint40).max for no expiry.
    function grant(address delegate, address viewer, uint128 pointers, uint40 notBefore, uint40 expiresAt)
        external
    {
        if (viewer == address(0)) revert ZeroAddress();
        if (pointers == 0) revert EmptyPointerSet();
        if (expiresAt <= notBefore || expiresAt <= block.timestamp) revert InvalidWindow(notBefore, expiresAt);
        bytes32 relId = relationshipId(msg.sender, delegate);
        _grants[relId][viewer] = Grant(pointers, notBefore, expiresAt);
        emit ViewerGranted(relId, viewer, pointers, notBefore, expiresAt);
    }

    /// @notice Withdraws every grant of `viewer` on the relationship, at once.
    /// @dev Only the patient (a grant only exists under the patient's own relationship id).
    /// @param delegate The relationship's delegate.
    /// @param viewer The viewer to cut off.
    function revoke(address delegate, address viewer) external {
        bytes32 relId = relationshipId(msg.sender, delegate);
        if (_grants[relId][viewer].pointers == 0) revert NoSuchGrant(relId, viewer);
        delete _grants[relId][viewer];
        emit ViewerRevoked(relId, viewer);
    }

    /// @notice Opts the relationship in to, or out of, research bounties.
    /// @dev Only the patient, on a relationship that is not closed. The default is out;
    /// a closed relationship never contributes, whatever this flag says.
    /// @param delegate The relationship's delegate.
    /// @param optIn True to let this relationship's data feed aggregate bounties.
    function setResearchConsent(address delegate, bool optIn) external {
        bytes32 relId = relationshipId(msg.sender, delegate);
        Relationship storage r = _relationships[relId];
        if (r.status == Status.None) revert UnknownRelationship(relId);
        if (r.status == Status.Rejected || r.status == Status.Deleted) revert RelationshipClosed(relId, r.status);
        r.researchOptIn = optIn;
        emit ResearchConsentChanged(relId, optIn);
    }

    /// @notice Allows or refuses break-glass access to the caller's emergency set
    /// (allergies, medications, conditions). Allowed until the patient refuses it.
    /// @dev Only the patient (the caller's own setting).
    /// @param allowed False to refuse every break-glass from now on.
    function setBreakGlass(bool allowed) external {
        breakGlassRefused[msg.sender] = !allowed;
        emit BreakGlassSettingChanged(msg.sender, allowed);
    }

    // ----- emergency side -----------------------------------------------------------

    /// @notice Opens `patient`'s emergency set to the caller for BREAK_GLASS_SECONDS,
    /// without a prior grant. The event notifies the patient at once, every gatekeeper
    /// holding a relationship of the patient serves the caller that set until it
    /// expires, and logs each read as a break-glass read.
    /// @dev Only a member of an emergency group (checked in the `Registrar`), and only
    /// when the patient has not refused break-glass.
    /// @param patient The patient.
    /// @param group The emergency group the caller acts as a member of.
    /// @param reason Why.
    /// @return expiresAt When the opening ends.
    function breakGlass(address patient, uint256 group, EmergencyReason reason) external returns (uint40 expiresAt) {
        if (patient == address(0)) revert ZeroAddress();
        if (reason == EmergencyReason.None) revert NoReason();
        if (!registrar.isEmergencyMember(group, msg.sender)) revert NotEmergencyMember(group, msg.sender);
        if (breakGlassRefused[patient]) revert BreakGlassRefused(patient);
        expiresAt = uint40(block.timestamp) + BREAK_GLASS_SECONDS;
        emit BreakGlass(patient, msg.sender, group, reason, expiresAt);
    }

    // ----- views --------------------------------------------------------------------

    /// @notice The id of the relationship between `patient` and `delegate`.
    /// @param patient The patient's address.
    /// @param delegate The relationship's delegate.
    /// @return relId The id.
    function relationshipId(address patient, address delegate) public pure returns (bytes32 relId) {
        // Same bytes as keccak256(abi.encode(patient, delegate)), hashed in the scratch
        // space instead of freshly allocated memory (this sits on every hot path).
        assembly ("memory-safe") {
            mstore(0x00, patient)
            mstore(0x20, delegate)
            relId := keccak256(0x00, 0x40)
        }
    }

    /// @notice A relationship by id (all zero when unknown).
    /// @param relId The relationship id.
    /// @return The stored relationship.
    function relationship(bytes32 relId) external view returns (Relationship memory) {
        return _relationships[relId];
    }

    /// @notice The grant of `viewer` on a relationship (all zero when none).
    /// @param relId The relationship id.
    /// @param viewer The viewer.
    /// @return The stored grant.
    function grantOf(bytes32 relId, address viewer) external view returns (Grant memory) {
        return _grants[relId][viewer];
    }

    /// @notice Whether `viewer` may run pointer `pointerId` of a relationship right now:
    /// the relationship is accepted (or has an update pending), the patient has accepted
    /// the pointer (pointers added since the last acceptance wait for the next one), the
    /// viewer's grant names it, and the current time is inside the grant's window.
    /// @param relId The relationship id.
    /// @param viewer The would-be viewer.
    /// @param pointerId The pointer.
    /// @return True when allowed.
    function canView(bytes32 relId, address viewer, uint256 pointerId) external view returns (bool) {
        Relationship memory r = _relationships[relId];
        if (r.status != Status.Accepted && r.status != Status.UpdatePending) return false;
        if (pointerId >= r.acceptedCount) return false;
        Grant memory g = _grants[relId][viewer];
        return (g.pointers >> pointerId) & 1 == 1 && block.timestamp >= g.notBefore
            && block.timestamp < g.expiresAt;
    }

    // ----- internals ----------------------------------------------------------------

    function _openForProvider(bytes32 relId) private view returns (Relationship memory r) {
        r = _relationships[relId];
        if (r.status == Status.None) revert UnknownRelationship(relId);
        if (r.status == Status.Rejected || r.status == Status.Deleted) revert RelationshipClosed(relId, r.status);
    }

    /// @dev Stores a pointer change: bumps the update count, moves Accepted to
    /// UpdatePending and records the block's miner as the owner of the change's bounty.
    function _changed(bytes32 relId, Relationship memory r, bytes32 bounty) private {
        uint24 seq = r.updates;
        r.updates = seq + 1;
        r.updatedAt = uint40(block.timestamp);
        bool pending = r.status == Status.Accepted;
        if (pending) r.status = Status.UpdatePending;
        _relationships[relId] = r;
        if (pending) emit StatusChanged(relId, Status.UpdatePending);
        emit BountyPosted(relId, block.coinbase, seq, bounty);
    }

    function _transition(address delegate, Status to) private {
        bytes32 relId = relationshipId(msg.sender, delegate);
        Relationship storage r = _relationships[relId];
        Status from = r.status;
        if (from == Status.None) revert UnknownRelationship(relId);
        bool allowed = to == Status.Deleted
            ? from != Status.Deleted
            : (from == Status.New || from == Status.UpdatePending);
        if (!allowed) revert InvalidTransition(relId, from, to);
        r.status = to;
        if (to == Status.Accepted) r.acceptedCount = r.pointerCount;
        emit StatusChanged(relId, to);
    }
}
