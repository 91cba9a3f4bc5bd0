// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Registrar} from "./Registrar.sol";

/// @title MedRec Patient–Provider Relationships, Summaries and Keys
/// @notice Every patient–provider relationship (PPR) lives in this one contract: its
/// status in the patient's summary, its data pointers, the patient's grants to viewers,
/// research consent, the bounty attached to every pointer update, break-glass openings
/// of a patient's emergency set, and the keys that act for each patient's account
/// (rotation, custodians, guardian recovery).
/// @dev Privacy and gas are the design constraints (see contracts/README.md):
/// - The patient's key creates each relationship from an offer the provider keeps at
///   its gatekeeper. No provider address is ever an argument, a topic or a sender: the
///   provider's identity is recorded only encrypted for the patient (`identity`), and
///   the relationship's delegate, an address the provider uses for it alone, acts on it
///   afterwards.
/// - A relationship is one storage slot, addressed by
///   `relId = keccak256(abi.encode(account, delegate))`. The account is the address of
///   the patient's first key and never changes; keys come and go.
/// - One slot per acting key, `keys[key] = (account, rights, until)`. A key with no slot
///   is its own account with every right; a key whose rights are zero is retired. Every
///   patient-side call reads its caller's slot and names the caller in its event.
/// - Grants and revocations are events: the consent index applies them; nothing on chain
///   reads a grant. Pointer contents and bounty owners are events too.
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

    /// @notice A key that acts for an account, as stored: one slot.
    struct Key {
        /// @dev The account it acts for (zero: the key is its own account, every right).
        address account;
        /// @dev SEE | SHARE | DECIDE | OWNER bits; zero: retired.
        uint8 rights;
        /// @dev The key's rights end at this timestamp (a minor's handover date); 0: never.
        uint40 until;
    }

    /// @notice A guardian recovery in progress, and the account's recovery nonce.
    struct Recovery {
        /// @dev The key the account moves to (zero: none in progress).
        address newKey;
        /// @dev When the recovery may be completed.
        uint40 readyAt;
        /// @dev Bumped by every veto and completion, so that signatures cannot be replayed.
        uint32 nonce;
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

    /// @notice Right to read the account's records (at the gatekeepers).
    uint8 public constant SEE = 1;
    /// @notice Right to grant and revoke viewers.
    uint8 public constant SHARE = 2;
    /// @notice Right to create, accept, reject and delete relationships, and to set
    /// research consent and the break-glass setting.
    uint8 public constant DECIDE = 4;
    /// @notice Right to manage the account's keys and guardians (the patient's own key).
    uint8 public constant OWNER = 8;
    /// @notice Every right.
    uint8 public constant ALL = 15;

    /// @notice Most pointers a relationship can hold (the width of a grant's pointer set).
    uint256 public constant MAX_POINTERS = 128;
    /// @notice Length of a relationship's encrypted provider identity: 20 bytes of
    /// address and 16 of AES-GCM tag.
    uint256 public constant IDENTITY_BYTES = 36;
    /// @notice Most bytes of a grant's sealed relationship key.
    uint256 public constant MAX_SEALED_KEY_BYTES = 96;
    /// @notice How long a break-glass opening lasts, from its block's timestamp.
    uint40 public constant BREAK_GLASS_SECONDS = 4 hours;
    /// @notice How long a guardian recovery waits for the patient's veto.
    uint40 public constant RECOVERY_DELAY = 72 hours;
    /// @notice Most guardians an account names.
    uint256 public constant MAX_GUARDIANS = 16;

    /// @notice EIP-712 type of a key's consent to act for an account.
    bytes32 public constant KEY_ACCEPTANCE_TYPEHASH =
        keccak256("KeyAcceptance(address account,address key,uint8 rights,uint40 until)");
    /// @notice EIP-712 type of a guardian's approval of a recovery.
    bytes32 public constant RECOVERY_TYPEHASH = keccak256("Recovery(address account,address newKey,uint32 nonce)");

    /// @notice The registrar that says who is a certified institution and a group member.
    Registrar public immutable registrar;
    /// @notice The EIP-712 domain separator of this contract.
    bytes32 public immutable DOMAIN_SEPARATOR;

    mapping(bytes32 => Relationship) private _relationships;
    mapping(address => Key) private _keys;
    /// @dev account => keccak256(abi.encode(salt, sorted guardians, threshold)).
    mapping(address => bytes32) private _guardians;
    mapping(address => Recovery) private _recoveries;

    /// @notice Whether an account refused break-glass access (default: allowed).
    mapping(address => bool) public breakGlassRefused;

    // ----- errors -------------------------------------------------------------------

    /// @notice A delegate, viewer or key address must not be zero.
    error ZeroAddress();
    /// @notice The delegate must be an address of the provider's, not the patient's.
    error DelegateIsPatient();
    /// @notice A query commitment, data hash or bounty commitment must not be zero.
    error ZeroHash();
    /// @notice A relationship with this account and delegate already exists.
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
    /// @notice The encrypted identity must be IDENTITY_BYTES long, a sealed key at most
    /// MAX_SEALED_KEY_BYTES.
    error BadCiphertext(uint256 length);
    /// @notice Key `key` may not do this: it lacks rights `needed`, is retired, or its
    /// powers ended.
    error KeyNotAllowed(address key, uint8 needed);
    /// @notice The key already acts for an account (or for another one).
    error KeyInUse(address key);
    /// @notice Rights must be a non-empty subset of SEE | SHARE | DECIDE.
    error BadRights(uint8 rights);
    /// @notice The key's signature accepting to act for the account is missing or wrong.
    error BadKeySignature(address key);
    /// @notice The owner key cannot be removed (rotate it instead), and `key` is no key of
    /// this account.
    error NotAKeyOf(address account, address key);
    /// @notice Only a certified institution may add a custodian for a minor.
    error NotInstitution(address caller);
    /// @notice The guardians, salt and threshold do not match the account's commitment.
    error GuardiansMismatch(address account);
    /// @notice Fewer than the threshold of distinct guardians signed.
    error NotEnoughGuardians(uint256 signed, uint256 threshold);
    /// @notice A recovery for this account is already waiting.
    error RecoveryPending(address account);
    /// @notice No recovery for this account is waiting.
    error NoRecovery(address account);
    /// @notice The recovery's time-lock has not passed yet.
    error RecoveryLocked(uint40 readyAt);
    /// @notice `key` is not the account's owner key.
    error NotOwnerKey(address account, address key);
    /// @notice Only a member of an emergency group may break the glass, as that group.
    error NotEmergencyMember(uint256 group, address caller);
    /// @notice The patient refused break-glass access.
    error BreakGlassRefused(address account);
    /// @notice A break-glass must state one of the reasons.
    error NoReason();

    // ----- events -------------------------------------------------------------------

    /// @notice Key `actor` of `account` created relationship `relId` with a provider's
    /// delegate `delegate`; `identity` is the provider's address encrypted for the patient.
    event RelationshipCreated(
        bytes32 indexed relId, address indexed account, address delegate, address actor, bytes identity
    );
    /// @notice The relationship's status in the patient's summary is now `status`;
    /// `actor` is the key (or the delegate) that moved it.
    event StatusChanged(bytes32 indexed relId, Status status, address actor);
    /// @notice Pointer `pointerId` was added: its salted query text hashes to
    /// `queryCommitment` and its data to `dataHash`.
    event PointerAdded(bytes32 indexed relId, uint256 pointerId, bytes32 queryCommitment, bytes32 dataHash);
    /// @notice Pointer `pointerId` now returns data hashing to `dataHash`.
    event PointerUpdated(bytes32 indexed relId, uint256 pointerId, bytes32 dataHash);
    /// @notice A bounty query (text hashing to `commitment`) came with pointer change
    /// `seq` of `relId`; `owner`, the miner of this block, owns it.
    event BountyPosted(bytes32 indexed relId, address indexed owner, uint256 seq, bytes32 commitment);
    /// @notice Key `actor` granted `viewer` the pointer set `pointers` from `notBefore`
    /// until `expiresAt`, replacing any earlier grant; `sealedKey` is the relationship's
    /// key encrypted for the viewer (empty when the viewer has no encryption key).
    event ViewerGranted(
        bytes32 indexed relId,
        address indexed viewer,
        uint128 pointers,
        uint40 notBefore,
        uint40 expiresAt,
        address actor,
        bytes sealedKey
    );
    /// @notice `actor` revoked every grant of `viewer`. Readers apply it only when
    /// `actor` was then a key of the relationship's account with SHARE.
    event ViewerRevoked(bytes32 indexed relId, address indexed viewer, address actor);
    /// @notice The patient opted this relationship in to (or out of) research bounties.
    event ResearchConsentChanged(bytes32 indexed relId, bool optedIn, address actor);
    /// @notice The account allowed (or refused) break-glass access to its emergency set.
    event BreakGlassSettingChanged(address indexed account, bool allowed, address actor);
    /// @notice Emergency clinician `clinician`, a member of emergency group `group`,
    /// opened `account`'s emergency set for `reason` until `expiresAt`.
    event BreakGlass(
        address indexed account, address indexed clinician, uint256 indexed group, EmergencyReason reason, uint40 expiresAt
    );
    /// @notice `key` now acts for `account` with `rights` until `until` (rights 0:
    /// retired); `actor` made the change.
    event KeyChanged(address indexed account, address indexed key, uint8 rights, uint40 until, address actor);
    /// @notice `account` moved from `oldKey` (retired from this block on) to `newKey`,
    /// which holds every right; `actor` sent it (the old key, or anyone completing a
    /// guardian recovery).
    event KeyRotated(address indexed account, address oldKey, address newKey, address actor);
    /// @notice The account's guardians changed (who they are is not revealed).
    event GuardiansChanged(address indexed account, address actor);
    /// @notice Guardians started moving `account` to `newKey`; it completes at `readyAt`
    /// unless a key of the account vetoes.
    event RecoveryStarted(address indexed account, address newKey, uint40 readyAt);
    /// @notice Key `actor` of the account vetoed the waiting recovery.
    event RecoveryVetoed(address indexed account, address actor);

    /// @notice Deploys the relationships contract.
    /// @param registrar_ The registrar of institutions and groups.
    constructor(Registrar registrar_) {
        registrar = registrar_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("MedRec Relationships"),
                keccak256("2"),
                block.chainid,
                address(this)
            )
        );
    }

    // ----- patient side: relationships ----------------------------------------------

    /// @notice Creates a relationship from a provider's offer, with its first data
    /// pointer (id 0), already accepted. The caller's account must not have one with
    /// this delegate. An account's first relationship also opens its key slot, so that
    /// a later rotation changes slots instead of creating them.
    /// @dev A key of the account with DECIDE. The provider is named only inside
    /// `identity`, encrypted under a key only the patient holds.
    /// @param delegate The address the provider uses for this relationship only.
    /// @param queryCommitment Salted hash of the pointer's query text.
    /// @param dataHash Hash of the data the query returns.
    /// @param identity The provider's address, encrypted for the patient (IDENTITY_BYTES).
    /// @return relId The relationship id, `keccak256(abi.encode(account, delegate))`.
    function create(address delegate, bytes32 queryCommitment, bytes32 dataHash, bytes calldata identity)
        external
        returns (bytes32 relId)
    {
        Key memory k = _keys[msg.sender];
        address account = _allowed(k, DECIDE);
        if (k.account == address(0)) _keys[msg.sender] = Key(msg.sender, ALL, 0);
        if (delegate == address(0)) revert ZeroAddress();
        if (delegate == account) revert DelegateIsPatient();
        if (queryCommitment == bytes32(0) || dataHash == bytes32(0)) revert ZeroHash();
        if (identity.length != IDENTITY_BYTES) revert BadCiphertext(identity.length);
        relId = relationshipId(account, delegate);
        if (_relationships[relId].status != Status.None) revert RelationshipExists(relId);
        _relationships[relId] = Relationship(Status.Accepted, 1, 1, false, uint40(block.timestamp), 0);
        emit RelationshipCreated(relId, account, delegate, msg.sender, identity);
        emit PointerAdded(relId, 0, queryCommitment, dataHash);
    }

    /// @notice Accepts a pending update into the record: viewers now see every pointer.
    /// @dev A key of the account with DECIDE.
    /// @param delegate The relationship's delegate.
    function accept(address delegate) external {
        _transition(delegate, Status.Accepted);
    }

    /// @notice Rejects a pending update; the relationship closes.
    /// @dev A key of the account with DECIDE.
    /// @param delegate The relationship's delegate.
    function reject(address delegate) external {
        _transition(delegate, Status.Rejected);
    }

    /// @notice Deletes the relationship from the summary; it closes for good.
    /// @dev A key of the account with DECIDE.
    /// @param delegate The relationship's delegate.
    function remove(address delegate) external {
        _transition(delegate, Status.Deleted);
    }

    /// @notice Lets `viewer` run the pointers in `pointers` from `notBefore` until
    /// `expiresAt`, replacing any earlier grant to the same viewer.
    /// @dev A key of the account with SHARE. Nothing is stored: the event is the grant,
    /// and the consent index applies it while the relationship is accepted.
    /// @param delegate The relationship's delegate.
    /// @param viewer The address being granted access (a person or a group's address).
    /// @param pointers Bit i set: pointer i may be run.
    /// @param notBefore Start of validity (0 = now).
    /// @param expiresAt End of validity (exclusive); type(uint40).max for no expiry.
    /// @param sealedKey The relationship key encrypted for the viewer (may be empty).
    function grant(
        address delegate,
        address viewer,
        uint128 pointers,
        uint40 notBefore,
        uint40 expiresAt,
        bytes calldata sealedKey
    ) external {
        address account = _allowed(_keys[msg.sender], SHARE);
        if (viewer == address(0)) revert ZeroAddress();
        if (pointers == 0) revert EmptyPointerSet();
        if (expiresAt <= notBefore || expiresAt <= block.timestamp) revert InvalidWindow(notBefore, expiresAt);
        if (sealedKey.length > MAX_SEALED_KEY_BYTES) revert BadCiphertext(sealedKey.length);
        emit ViewerGranted(
            relationshipId(account, delegate), viewer, pointers, notBefore, expiresAt, msg.sender, sealedKey
        );
    }

    /// @notice Withdraws every grant of `viewer` on relationship `relId`, at once.
    /// @dev Revoking only ever narrows access, so the contract records it without a
    /// storage read (the 25,000 gas budget leaves no room for one); the consent index
    /// applies it only when the caller was then a key of the relationship's account with
    /// SHARE, and ignores it otherwise.
    /// @param relId The relationship.
    /// @param viewer The viewer to cut off.
    function revoke(bytes32 relId, address viewer) external {
        emit ViewerRevoked(relId, viewer, msg.sender);
    }

    /// @notice Opts the relationship in to, or out of, research bounties.
    /// @dev A key of the account with DECIDE, on a relationship that is not closed.
    /// @param delegate The relationship's delegate.
    /// @param optIn True to let this relationship's data feed aggregate bounties.
    function setResearchConsent(address delegate, bool optIn) external {
        bytes32 relId = relationshipId(_allowed(_keys[msg.sender], DECIDE), delegate);
        Relationship storage r = _relationships[relId];
        if (r.status == Status.None) revert UnknownRelationship(relId);
        if (r.status == Status.Rejected || r.status == Status.Deleted) revert RelationshipClosed(relId, r.status);
        r.researchOptIn = optIn;
        emit ResearchConsentChanged(relId, optIn, msg.sender);
    }

    /// @notice Allows or refuses break-glass access to the account's emergency set
    /// (allergies, medications, conditions). Allowed until refused.
    /// @dev A key of the account with DECIDE.
    /// @param allowed False to refuse every break-glass from now on.
    function setBreakGlass(bool allowed) external {
        address account = _allowed(_keys[msg.sender], DECIDE);
        breakGlassRefused[account] = !allowed;
        emit BreakGlassSettingChanged(account, allowed, msg.sender);
    }

    // ----- patient side: keys -------------------------------------------------------

    /// @notice Moves the account to `newKey`: the caller's key is retired from this
    /// block on and `newKey` holds every right. Relationships and grants stay (they are
    /// the account's, not the key's); nothing per relationship moves.
    /// @dev The owner key. `keySig` is `newKey`'s EIP-712 KeyAcceptance of
    /// (account, newKey, ALL, 0), so that a typo cannot hand the account away.
    /// @param newKey A fresh key.
    /// @param keySig The new key's signature.
    function rotate(address newKey, bytes calldata keySig) external {
        address account = _allowed(_keys[msg.sender], OWNER);
        _acceptKey(account, newKey, ALL, 0, keySig);
        _rotate(account, msg.sender, newKey);
    }

    /// @notice Lets `key` act for the account with `rights` (SEE, SHARE, DECIDE) until
    /// `until` (0: until removed): a spouse, a holder of power of attorney. Also changes
    /// an existing custodian's rights.
    /// @dev The owner key. `keySig` is `key`'s KeyAcceptance.
    /// @param key The custodian's key for this account (one key acts for one account).
    /// @param rights A non-empty subset of SEE | SHARE | DECIDE.
    /// @param until When its powers end (0: never).
    /// @param keySig The custodian key's signature.
    function addKey(address key, uint8 rights, uint40 until, bytes calldata keySig) external {
        address account = _allowed(_keys[msg.sender], OWNER);
        _custodian(account, key, rights, until, keySig);
    }

    /// @notice Registers a minor's custodian (a parent) with rights until the handover
    /// date, after which only the patient's own key acts.
    /// @dev Only a certified institution. This gives an institution no power it lacks:
    /// `Registrar.remap` already lets one move any identity to a key it holds. The
    /// `KeyChanged` event tells the patient's app, and the owner key removes the key.
    /// @param account The minor's account.
    /// @param key The custodian's key for this account.
    /// @param rights A non-empty subset of SEE | SHARE | DECIDE.
    /// @param handover When the custodian's powers end (must be in the future).
    /// @param keySig The custodian key's signature.
    function addCustodian(address account, address key, uint8 rights, uint40 handover, bytes calldata keySig)
        external
    {
        if (!registrar.isInstitution(msg.sender)) revert NotInstitution(msg.sender);
        if (account == address(0)) revert ZeroAddress();
        if (handover <= block.timestamp) revert InvalidWindow(0, handover);
        _custodian(account, key, rights, handover, keySig);
    }

    /// @notice Retires a custodian's key at once.
    /// @dev The owner key.
    /// @param key A custodian key of the account.
    function removeKey(address key) external {
        address account = _allowed(_keys[msg.sender], OWNER);
        Key memory k = _keys[key];
        if (k.account != account || k.rights & OWNER != 0 || k.rights == 0) revert NotAKeyOf(account, key);
        _setKey(account, key, 0, 0);
    }

    /// @notice Sets the account's guardians as a commitment,
    /// `keccak256(abi.encode(salt, guardians, threshold))` with the guardians' addresses
    /// in ascending order: who they are stays off chain until a recovery uses them.
    /// Zero removes them.
    /// @dev The owner key.
    /// @param commitment The commitment.
    function setGuardians(bytes32 commitment) external {
        address account = _allowed(_keys[msg.sender], OWNER);
        _guardians[account] = commitment;
        emit GuardiansChanged(account, msg.sender);
    }

    /// @notice Starts moving `account` to `newKey` with the approval of `threshold` of
    /// its guardians. Completes after RECOVERY_DELAY unless a key of the account vetoes.
    /// @dev Anyone may send it; the guardians' EIP-712 Recovery signatures (in any order,
    /// each guardian once) and the new key's KeyAcceptance authorise it.
    /// @param account The account to recover.
    /// @param newKey The key it moves to.
    /// @param keySig The new key's KeyAcceptance of (account, newKey, ALL, 0).
    /// @param guardians The guardians, ascending, as committed.
    /// @param threshold How many must sign, as committed.
    /// @param salt The commitment's salt.
    /// @param signatures Guardians' signatures of Recovery(account, newKey, nonce).
    function startRecovery(
        address account,
        address newKey,
        bytes calldata keySig,
        address[] calldata guardians,
        uint8 threshold,
        bytes32 salt,
        bytes[] calldata signatures
    ) external {
        bytes32 committed = _guardians[account];
        if (committed == bytes32(0) || keccak256(abi.encode(salt, guardians, threshold)) != committed) {
            revert GuardiansMismatch(account);
        }
        // Strictly ascending, so that no guardian is counted twice.
        if (guardians.length > MAX_GUARDIANS) revert GuardiansMismatch(account);
        for (uint256 g = 1; g < guardians.length; ++g) {
            if (guardians[g] <= guardians[g - 1]) revert GuardiansMismatch(account);
        }
        Recovery memory r = _recoveries[account];
        if (r.newKey != address(0)) revert RecoveryPending(account);
        _acceptKey(account, newKey, ALL, 0, keySig);
        bytes32 digest = _digest(keccak256(abi.encode(RECOVERY_TYPEHASH, account, newKey, r.nonce)));
        uint256 signers;
        uint256 seen; // bit i: guardian i signed
        for (uint256 i = 0; i < signatures.length; ++i) {
            address signer = _recover(digest, signatures[i]);
            for (uint256 g = 0; g < guardians.length; ++g) {
                if (guardians[g] == signer && signer != address(0) && (seen >> g) & 1 == 0) {
                    seen |= 1 << g;
                    ++signers;
                    break;
                }
            }
        }
        if (threshold == 0 || signers < threshold) revert NotEnoughGuardians(signers, threshold);
        uint40 readyAt = uint40(block.timestamp) + RECOVERY_DELAY;
        _recoveries[account] = Recovery(newKey, readyAt, r.nonce);
        emit RecoveryStarted(account, newKey, readyAt);
    }

    /// @notice Stops the waiting recovery of the caller's account.
    /// @dev The owner key.
    function vetoRecovery() external {
        address account = _allowed(_keys[msg.sender], OWNER);
        Recovery memory r = _recoveries[account];
        if (r.newKey == address(0)) revert NoRecovery(account);
        _recoveries[account] = Recovery(address(0), 0, r.nonce + 1);
        emit RecoveryVetoed(account, msg.sender);
    }

    /// @notice Completes a recovery whose time-lock has passed: `oldKey`, the account's
    /// owner key, is retired and the recovery's new key holds every right. The guardians
    /// are now known, so their commitment is cleared: the patient names them again.
    /// @dev Anyone may send it.
    /// @param account The account.
    /// @param oldKey The account's owner key now.
    function completeRecovery(address account, address oldKey) external {
        Recovery memory r = _recoveries[account];
        if (r.newKey == address(0)) revert NoRecovery(account);
        if (block.timestamp < r.readyAt) revert RecoveryLocked(r.readyAt);
        Key memory k = _keys[oldKey];
        bool owner = k.account == address(0) ? oldKey == account : k.account == account && k.rights & OWNER != 0;
        if (!owner) revert NotOwnerKey(account, oldKey);
        // The new key may have started acting for someone during the time-lock.
        if (_keys[r.newKey].account != address(0)) revert KeyInUse(r.newKey);
        _recoveries[account] = Recovery(address(0), 0, r.nonce + 1);
        delete _guardians[account];
        _rotate(account, oldKey, r.newKey);
    }

    // ----- provider side ------------------------------------------------------------

    /// @notice Adds a data pointer, with the bounty query that every change carries.
    /// An accepted relationship becomes UpdatePending.
    /// @dev Only the relationship's delegate.
    /// @param account The patient's account.
    /// @param queryCommitment Salted hash of the new pointer's query text.
    /// @param dataHash Hash of the data it returns.
    /// @param bounty Commitment to the bounty query's canonical text.
    /// @return pointerId The new pointer's id.
    function addPointer(address account, bytes32 queryCommitment, bytes32 dataHash, bytes32 bounty)
        external
        returns (uint256 pointerId)
    {
        if (queryCommitment == bytes32(0) || dataHash == bytes32(0) || bounty == bytes32(0)) revert ZeroHash();
        bytes32 relId = relationshipId(account, msg.sender);
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
    /// @param account The patient's account.
    /// @param pointerId The pointer.
    /// @param dataHash Hash of the data the pointer's query now returns.
    /// @param bounty Commitment to the bounty query's canonical text.
    function updatePointer(address account, uint256 pointerId, bytes32 dataHash, bytes32 bounty) external {
        if (dataHash == bytes32(0) || bounty == bytes32(0)) revert ZeroHash();
        bytes32 relId = relationshipId(account, msg.sender);
        Relationship memory r = _openForProvider(relId);
        if (pointerId >= r.pointerCount) revert UnknownPointer(relId, pointerId);
        _changed(relId, r, bounty);
        emit PointerUpdated(relId, pointerId, dataHash);
    }

    // ----- emergency side -----------------------------------------------------------

    /// @notice Opens `account`'s emergency set to the caller for BREAK_GLASS_SECONDS,
    /// without a prior grant. The event notifies the patient at once; every gatekeeper
    /// holding a relationship of the account serves the caller that set until it
    /// expires, and logs each read as a break-glass read.
    /// @dev Only a member of an emergency group (checked in the `Registrar`), and only
    /// when the patient has not refused break-glass.
    /// @param account The patient's account.
    /// @param group The emergency group the caller acts as a member of.
    /// @param reason Why.
    /// @return expiresAt When the opening ends.
    function breakGlass(address account, uint256 group, EmergencyReason reason) external returns (uint40 expiresAt) {
        if (account == address(0)) revert ZeroAddress();
        if (reason == EmergencyReason.None) revert NoReason();
        if (!registrar.isEmergencyMember(group, msg.sender)) revert NotEmergencyMember(group, msg.sender);
        if (breakGlassRefused[account]) revert BreakGlassRefused(account);
        expiresAt = uint40(block.timestamp) + BREAK_GLASS_SECONDS;
        emit BreakGlass(account, msg.sender, group, reason, expiresAt);
    }

    // ----- views --------------------------------------------------------------------

    /// @notice The id of the relationship between `account` and `delegate`.
    /// @param account The patient's account.
    /// @param delegate The relationship's delegate.
    /// @return relId The id.
    function relationshipId(address account, address delegate) public pure returns (bytes32 relId) {
        // Same bytes as keccak256(abi.encode(account, delegate)), hashed in the scratch
        // space instead of freshly allocated memory (this sits on every hot path).
        assembly ("memory-safe") {
            mstore(0x00, account)
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

    /// @notice The slot of `key` (all zero: the key is its own account, every right).
    /// @param key Any address.
    /// @return The stored key.
    function keyOf(address key) external view returns (Key memory) {
        return _keys[key];
    }

    /// @notice The account `key` acts for and its rights now (zero rights: it may not act).
    /// @param key Any address.
    /// @return account The account.
    /// @return rights The rights in force now.
    function actingFor(address key) external view returns (address account, uint8 rights) {
        Key memory k = _keys[key];
        if (k.account == address(0)) return (key, ALL);
        bool ended = k.until != 0 && block.timestamp >= k.until;
        return (k.account, ended ? 0 : k.rights);
    }

    /// @notice Whether the account has guardians.
    /// @param account The account.
    /// @return True when a guardian commitment is set.
    function hasGuardians(address account) external view returns (bool) {
        return _guardians[account] != bytes32(0);
    }

    /// @notice The account's waiting recovery (new key zero: none) and recovery nonce.
    /// @param account The account.
    /// @return The recovery.
    function recoveryOf(address account) external view returns (Recovery memory) {
        return _recoveries[account];
    }

    // ----- internals ----------------------------------------------------------------

    /// @dev The account `k` (the caller's slot) acts for, when it holds `needed` now.
    function _allowed(Key memory k, uint8 needed) private view returns (address) {
        if (k.account == address(0)) return msg.sender;
        if (k.rights & needed != needed || (k.until != 0 && block.timestamp >= k.until)) {
            revert KeyNotAllowed(msg.sender, needed);
        }
        return k.account;
    }

    function _setKey(address account, address key, uint8 rights, uint40 until) private {
        _keys[key] = Key(account, rights, until);
        emit KeyChanged(account, key, rights, until, msg.sender);
    }

    /// @dev One event for both slots: a rotation is the one key change on a budget.
    function _rotate(address account, address oldKey, address newKey) private {
        _keys[oldKey] = Key(account, 0, 0);
        _keys[newKey] = Key(account, ALL, 0);
        emit KeyRotated(account, oldKey, newKey, msg.sender);
    }

    function _custodian(address account, address key, uint8 rights, uint40 until, bytes calldata keySig) private {
        if (rights == 0 || rights & ~(SEE | SHARE | DECIDE) != 0) revert BadRights(rights);
        if (until != 0 && until <= block.timestamp) revert InvalidWindow(0, until);
        Key memory k = _keys[key];
        if (k.account != address(0) && (k.account != account || k.rights & OWNER != 0)) revert KeyInUse(key);
        _acceptKey(account, key, rights, until, keySig);
        _setKey(account, key, rights, until);
    }

    /// @dev Checks that `key` is free (or already a custodian of `account`) and signed
    /// its acceptance of (account, key, rights, until).
    function _acceptKey(address account, address key, uint8 rights, uint40 until, bytes calldata keySig)
        private
        view
    {
        if (key == address(0)) revert ZeroAddress();
        if (key == account || (rights == ALL && _keys[key].account != address(0))) revert KeyInUse(key);
        bytes32 digest = _digest(keccak256(abi.encode(KEY_ACCEPTANCE_TYPEHASH, account, key, rights, until)));
        if (_recover(digest, keySig) != key) revert BadKeySignature(key);
    }

    function _digest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, structHash));
    }

    /// @dev The signer of a 65-byte (r, s, v) signature, or zero when it is malformed or
    /// has a high s (EIP-2: one valid signature per message and key).
    function _recover(bytes32 digest, bytes calldata sig) private pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) return address(0);
        return ecrecover(digest, v, r, s);
    }

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
        if (pending) emit StatusChanged(relId, Status.UpdatePending, msg.sender);
        emit BountyPosted(relId, block.coinbase, seq, bounty);
    }

    function _transition(address delegate, Status to) private {
        bytes32 relId = relationshipId(_allowed(_keys[msg.sender], DECIDE), delegate);
        Relationship storage r = _relationships[relId];
        Status from = r.status;
        if (from == Status.None) revert UnknownRelationship(relId);
        bool allowed = to == Status.Deleted
            ? from != Status.Deleted
            : (from == Status.New || from == Status.UpdatePending);
        if (!allowed) revert InvalidTransition(relId, from, to);
        r.status = to;
        if (to == Status.Accepted) r.acceptedCount = r.pointerCount;
        emit StatusChanged(relId, to, msg.sender);
    }
}
