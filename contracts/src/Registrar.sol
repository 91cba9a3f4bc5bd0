// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title MedRec Registrar
/// @notice Maps salted identity commitments to Ethereum addresses and holds the
/// governance of MedRec: the set of certified institutions, which only they can change
/// by a strict-majority vote, the research entities they admit as bounty miners, and
/// the groups they define (e.g. the network's emergency departments), which a patient
/// grants like one viewer.
/// @dev No identity string is ever stored: an identity commitment is
/// `keccak256(abi.encodePacked(salt, identity))`, computed off chain by the
/// registering institution. One storage slot per patient keeps registration cheap.
contract Registrar {
    /// @notice The kind of participant an identity belongs to.
    enum Role {
        None,
        Patient,
        Provider
    }

    /// @notice What a governance proposal would do to its subject once it passes.
    enum Action {
        AddInstitution,
        RemoveInstitution,
        AdmitResearcher,
        RemoveResearcher
    }

    /// @notice A provider's public directory entry.
    struct Provider {
        /// @dev The identity commitment the provider was registered under.
        bytes32 identity;
        /// @dev An X25519 public key, used to encrypt data addressed to the provider.
        bytes32 encryptionKey;
        /// @dev Base URL of the provider's Database Gatekeeper.
        string endpoint;
    }

    /// @notice A group of participants that a patient grants like one viewer.
    struct Group {
        /// @dev The certified institution that created the group and manages its members.
        address manager;
        /// @dev Whether its members are emergency clinicians, who may break the glass.
        bool emergency;
        /// @dev Number of members now.
        uint32 members;
    }

    /// @notice A governance proposal.
    struct Proposal {
        address subject;
        Action action;
        bool executed;
        uint32 votes;
        uint32 epoch;
    }

    // ----- errors -------------------------------------------------------------------

    /// @notice Only a certified institution may do this; `caller` is not one.
    error NotInstitution(address caller);
    /// @notice Only a registered provider may do this; `caller` is not one.
    error NotProvider(address caller);
    /// @notice The zero address cannot be a participant, institution or researcher.
    error ZeroAddress();
    /// @notice The zero hash cannot be an identity commitment.
    error ZeroIdentity();
    /// @notice The identity commitment is already registered (use remap).
    error IdentityTaken(bytes32 identity);
    /// @notice No participant is registered under this identity commitment.
    error UnknownIdentity(bytes32 identity);
    /// @notice The account already has a provider entry.
    error ProviderExists(address account);
    /// @notice The gatekeeper endpoint must not be empty.
    error EmptyEndpoint();
    /// @notice The remap target is the account already mapped.
    error SameAccount(address account);
    /// @notice The deployment needs at least one certified institution.
    error NoInstitutions();
    /// @notice The address is already a certified institution.
    error AlreadyInstitution(address account);
    /// @notice The address is not a certified institution.
    error NotAnInstitution(address account);
    /// @notice Removing the last certified institution would freeze governance.
    error LastInstitution();
    /// @notice The address is already an admitted research entity.
    error AlreadyResearcher(address account);
    /// @notice The address is not an admitted research entity.
    error NotResearcher(address account);
    /// @notice No proposal has this id.
    error UnknownProposal(uint256 id);
    /// @notice The proposal already passed and was executed.
    error ProposalExecuted(uint256 id);
    /// @notice The set of institutions changed since the proposal was made; propose again.
    error ProposalStale(uint256 id);
    /// @notice This institution already voted for the proposal.
    error AlreadyVoted(uint256 id, address voter);
    /// @notice No group has this id.
    error UnknownGroup(uint256 id);
    /// @notice Only the institution that created the group manages its members.
    error NotGroupManager(uint256 id, address caller);
    /// @notice The address is already a member of the group.
    error AlreadyMember(uint256 id, address member);
    /// @notice The address is not a member of the group.
    error NotMember(uint256 id, address member);
    /// @notice A group's name must be 1 to 64 bytes.
    error BadGroupName();

    // ----- events -------------------------------------------------------------------

    /// @notice `account` became a certified institution.
    event InstitutionAdded(address indexed account);
    /// @notice `account` is no longer a certified institution.
    event InstitutionRemoved(address indexed account);
    /// @notice `account` was admitted as a research entity that may earn bounties.
    event ResearcherAdmitted(address indexed account);
    /// @notice `account` is no longer an admitted research entity.
    event ResearcherRemoved(address indexed account);
    /// @notice Institution `proposer` proposed `action` on `subject`.
    event ProposalCreated(uint256 indexed id, Action action, address indexed subject, address indexed proposer);
    /// @notice Institution `voter` voted for proposal `id`, which now has `votes` votes.
    event Voted(uint256 indexed id, address indexed voter, uint256 votes);
    /// @notice Proposal `id` reached a strict majority and was carried out.
    event ProposalPassed(uint256 indexed id);
    /// @notice `institution` registered `account` under `identity` with `role`.
    event IdentityRegistered(bytes32 indexed identity, address indexed account, Role role, address indexed institution);
    /// @notice `institution` remapped `identity` from account `from` to account `to`.
    event IdentityRemapped(bytes32 indexed identity, address indexed from, address indexed to, address institution);
    /// @notice Provider `account` now has gatekeeper `endpoint` and `encryptionKey`.
    event ProviderUpdated(address indexed account, string endpoint, bytes32 encryptionKey);
    /// @notice `account` published (or replaced) its X25519 encryption key.
    event EncryptionKeySet(address indexed account, bytes32 encryptionKey);
    /// @notice Institution `manager` created group `id`, granted under the address
    /// `group`; `emergency` when its members are emergency clinicians.
    event GroupCreated(uint256 indexed id, address indexed group, address indexed manager, bool emergency, string name);
    /// @notice `member` joined group `id`.
    event GroupMemberAdded(uint256 indexed id, address indexed member);
    /// @notice `member` left group `id`.
    event GroupMemberRemoved(uint256 indexed id, address indexed member);

    // ----- state --------------------------------------------------------------------

    /// @dev identity commitment => packed(account:160 | role:8 | registeredAt:40).
    mapping(bytes32 => uint256) private _identities;
    /// @dev provider account => directory entry (identity is zero when absent).
    mapping(address => Provider) private _providers;

    /// @notice Whether an address is a certified institution.
    mapping(address => bool) public isInstitution;
    /// @notice Whether an address is an admitted research entity.
    mapping(address => bool) public isResearcher;
    /// @notice Number of certified institutions.
    uint256 public institutionCount;
    /// @notice Each participant's own X25519 public key, set by itself: what a patient
    /// encrypts a relationship's key to when granting it (zero: none published).
    mapping(address => bytes32) public encryptionKeyOf;
    /// @notice Incremented whenever the institution set changes; older proposals go stale.
    uint32 public epoch;

    Proposal[] private _proposals;
    mapping(uint256 => mapping(address => bool)) private _voted;

    /// @dev Group id - 1 => group (ids start at 1, so that 0 means none).
    Group[] private _groups;
    mapping(uint256 => mapping(address => bool)) private _isMember;

    /// @notice Deploys the registrar with its founding certified institutions.
    /// @param institutions The founding institutions; at least one, no duplicates.
    constructor(address[] memory institutions) {
        if (institutions.length == 0) revert NoInstitutions();
        for (uint256 i = 0; i < institutions.length; ++i) {
            _addInstitution(institutions[i]);
        }
    }

    modifier onlyInstitution() {
        if (!isInstitution[msg.sender]) revert NotInstitution(msg.sender);
        _;
    }

    // ----- identities ---------------------------------------------------------------

    /// @notice Registers a patient: `identity` now resolves to `account`.
    /// @dev Only certified institutions. One storage slot, no contract deployment.
    /// @param identity Salted identity commitment, `keccak256(salt ‖ identity string)`.
    /// @param account The patient's address.
    function registerPatient(bytes32 identity, address account) external onlyInstitution {
        _register(identity, account, Role.Patient);
    }

    /// @notice Registers a provider: `identity` resolves to `account`, whose directory
    /// entry gives its gatekeeper endpoint and encryption key.
    /// @dev Only certified institutions.
    /// @param identity Salted identity commitment of the provider.
    /// @param account The provider's main address.
    /// @param endpoint Base URL of the provider's Database Gatekeeper.
    /// @param encryptionKey The provider's X25519 public key.
    function registerProvider(bytes32 identity, address account, string calldata endpoint, bytes32 encryptionKey)
        external
        onlyInstitution
    {
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        if (_providers[account].identity != bytes32(0)) revert ProviderExists(account);
        _register(identity, account, Role.Provider);
        _providers[account] = Provider(identity, encryptionKey, endpoint);
        emit ProviderUpdated(account, endpoint, encryptionKey);
    }

    /// @notice Points `identity` at a new account (lost key, rotation). A provider's
    /// directory entry moves with it.
    /// @dev Only certified institutions.
    /// @param identity A registered identity commitment.
    /// @param to The new account.
    function remap(bytes32 identity, address to) external onlyInstitution {
        if (to == address(0)) revert ZeroAddress();
        uint256 entry = _identities[identity];
        if (entry == 0) revert UnknownIdentity(identity);
        address from = address(uint160(entry));
        if (from == to) revert SameAccount(to);
        Role role = Role(uint8(entry >> 160));
        if (role == Role.Provider) {
            if (_providers[to].identity != bytes32(0)) revert ProviderExists(to);
            _providers[to] = _providers[from];
            delete _providers[from];
        }
        _identities[identity] = (entry & ~uint256(type(uint160).max)) | uint160(to);
        emit IdentityRemapped(identity, from, to, msg.sender);
    }

    /// @notice Updates the caller's own gatekeeper endpoint and encryption key.
    /// @param endpoint New base URL of the provider's gatekeeper.
    /// @param encryptionKey New X25519 public key.
    function updateProvider(string calldata endpoint, bytes32 encryptionKey) external {
        Provider storage p = _providers[msg.sender];
        if (p.identity == bytes32(0)) revert NotProvider(msg.sender);
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        p.endpoint = endpoint;
        p.encryptionKey = encryptionKey;
        emit ProviderUpdated(msg.sender, endpoint, encryptionKey);
    }

    /// @notice Publishes the caller's own X25519 public key, to which patients encrypt
    /// what they share with the caller. Anyone may publish theirs.
    /// @param encryptionKey The X25519 public key (zero withdraws it).
    function setEncryptionKey(bytes32 encryptionKey) external {
        encryptionKeyOf[msg.sender] = encryptionKey;
        emit EncryptionKeySet(msg.sender, encryptionKey);
    }

    /// @notice Resolves an identity commitment.
    /// @param identity The identity commitment.
    /// @return account The mapped address (zero when unknown).
    /// @return role The participant's role (`None` when unknown).
    /// @return registeredAt Timestamp of the registration.
    function resolve(bytes32 identity) external view returns (address account, Role role, uint40 registeredAt) {
        uint256 entry = _identities[identity];
        return (address(uint160(entry)), Role(uint8(entry >> 160)), uint40(entry >> 168));
    }

    /// @notice A provider's directory entry.
    /// @param account The provider's main address.
    /// @return The entry; its `identity` is zero when `account` is not a provider.
    function provider(address account) external view returns (Provider memory) {
        return _providers[account];
    }

    /// @notice Whether `account` is a registered provider.
    /// @param account Any address.
    /// @return True when `account` has a provider entry.
    function isProvider(address account) external view returns (bool) {
        return _providers[account].identity != bytes32(0);
    }

    // ----- groups -------------------------------------------------------------------

    /// @notice Creates a group managed by the caller; a patient grants it under
    /// `groupAddress(id)` like a viewer, and every member reads what it was granted.
    /// @dev Only certified institutions. The name is public (e.g. "Emergency departments").
    /// @param name A name people recognise, 1 to 64 bytes.
    /// @param emergency True when its members are emergency clinicians (break-glass).
    /// @return id The group id (from 1).
    function createGroup(string calldata name, bool emergency) external onlyInstitution returns (uint256 id) {
        if (bytes(name).length == 0 || bytes(name).length > 64) revert BadGroupName();
        _groups.push(Group(msg.sender, emergency, 0));
        id = _groups.length;
        emit GroupCreated(id, groupAddress(id), msg.sender, emergency, name);
    }

    /// @notice Adds `member` to group `id`.
    /// @dev Only the group's manager, while it is a certified institution.
    /// @param id The group.
    /// @param member The address joining.
    function addMember(uint256 id, address member) external {
        Group storage g = _managed(id);
        if (member == address(0)) revert ZeroAddress();
        if (_isMember[id][member]) revert AlreadyMember(id, member);
        _isMember[id][member] = true;
        ++g.members;
        emit GroupMemberAdded(id, member);
    }

    /// @notice Removes `member` from group `id`; what the group was granted no longer
    /// reaches it from the next block.
    /// @dev Only the group's manager, while it is a certified institution.
    /// @param id The group.
    /// @param member The address leaving.
    function removeMember(uint256 id, address member) external {
        Group storage g = _managed(id);
        if (!_isMember[id][member]) revert NotMember(id, member);
        _isMember[id][member] = false;
        --g.members;
        emit GroupMemberRemoved(id, member);
    }

    /// @notice A group by id.
    /// @param id The group id.
    /// @return The group.
    function group(uint256 id) external view returns (Group memory) {
        if (id == 0 || id > _groups.length) revert UnknownGroup(id);
        return _groups[id - 1];
    }

    /// @notice Number of groups ever created; ids run from 1 to this count.
    /// @return The count.
    function groupCount() external view returns (uint256) {
        return _groups.length;
    }

    /// @notice Whether `member` belongs to group `id`.
    /// @param id The group id.
    /// @param member Any address.
    /// @return True when it is a member now.
    function isMember(uint256 id, address member) external view returns (bool) {
        return _isMember[id][member];
    }

    /// @notice Whether `member` belongs to group `id` and that group is an emergency group.
    /// @param id The group id.
    /// @param member Any address.
    /// @return True when `member` may break the glass as a member of `id`.
    function isEmergencyMember(uint256 id, address member) external view returns (bool) {
        return _isMember[id][member] && _groups[id - 1].emergency;
    }

    /// @notice The address a patient grants to share with group `id`:
    /// `address(uint160(uint256(keccak256(abi.encode("medrec/group/v1", id)))))`. No key
    /// has it, so it never acts; it only names the group in the viewer table.
    /// @param id The group id.
    /// @return The group's address.
    function groupAddress(uint256 id) public pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("medrec/group/v1", id)))));
    }

    // ----- governance ---------------------------------------------------------------

    /// @notice Proposes `action` on `subject` and casts the proposer's vote. Passes at
    /// once when that vote alone is a strict majority.
    /// @dev Only certified institutions.
    /// @param action What to do.
    /// @param subject The address it is done to.
    /// @return id The proposal id.
    function propose(Action action, address subject) external onlyInstitution returns (uint256 id) {
        if (subject == address(0)) revert ZeroAddress();
        _checkApplicable(action, subject);
        id = _proposals.length;
        _proposals.push(Proposal(subject, action, false, 0, epoch));
        emit ProposalCreated(id, action, subject, msg.sender);
        _vote(id);
    }

    /// @notice Votes for proposal `id`; carries it out when votes exceed half of the
    /// certified institutions.
    /// @dev Only certified institutions, once each.
    /// @param id The proposal id.
    function vote(uint256 id) external onlyInstitution {
        if (id >= _proposals.length) revert UnknownProposal(id);
        _vote(id);
    }

    /// @notice A proposal by id.
    /// @param id The proposal id.
    /// @return The proposal.
    function proposal(uint256 id) external view returns (Proposal memory) {
        if (id >= _proposals.length) revert UnknownProposal(id);
        return _proposals[id];
    }

    /// @notice Whether `voter` voted for proposal `id`.
    /// @param id The proposal id.
    /// @param voter An institution.
    /// @return True when it voted.
    function hasVoted(uint256 id, address voter) external view returns (bool) {
        return _voted[id][voter];
    }

    /// @notice Number of proposals ever made.
    /// @return The count; ids run from 0 to count - 1.
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    // ----- internals ----------------------------------------------------------------

    function _register(bytes32 identity, address account, Role role) private {
        if (identity == bytes32(0)) revert ZeroIdentity();
        if (account == address(0)) revert ZeroAddress();
        if (_identities[identity] != 0) revert IdentityTaken(identity);
        _identities[identity] = uint256(uint160(account)) | (uint256(uint8(role)) << 160)
            | (uint256(uint40(block.timestamp)) << 168);
        emit IdentityRegistered(identity, account, role, msg.sender);
    }

    function _managed(uint256 id) private view returns (Group storage g) {
        if (id == 0 || id > _groups.length) revert UnknownGroup(id);
        g = _groups[id - 1];
        if (g.manager != msg.sender || !isInstitution[msg.sender]) revert NotGroupManager(id, msg.sender);
    }

    function _vote(uint256 id) private {
        Proposal storage p = _proposals[id];
        if (p.executed) revert ProposalExecuted(id);
        if (p.epoch != epoch) revert ProposalStale(id);
        if (_voted[id][msg.sender]) revert AlreadyVoted(id, msg.sender);
        _voted[id][msg.sender] = true;
        uint32 votes = p.votes + 1;
        p.votes = votes;
        emit Voted(id, msg.sender, votes);
        if (uint256(votes) * 2 > institutionCount) {
            _checkApplicable(p.action, p.subject);
            p.executed = true;
            emit ProposalPassed(id);
            _execute(p.action, p.subject);
        }
    }

    function _checkApplicable(Action action, address subject) private view {
        if (action == Action.AddInstitution) {
            if (isInstitution[subject]) revert AlreadyInstitution(subject);
        } else if (action == Action.RemoveInstitution) {
            if (!isInstitution[subject]) revert NotAnInstitution(subject);
            if (institutionCount == 1) revert LastInstitution();
        } else if (action == Action.AdmitResearcher) {
            if (isResearcher[subject]) revert AlreadyResearcher(subject);
        } else if (!isResearcher[subject]) {
            revert NotResearcher(subject);
        }
    }

    function _execute(Action action, address subject) private {
        if (action == Action.AddInstitution) {
            _addInstitution(subject);
        } else if (action == Action.RemoveInstitution) {
            isInstitution[subject] = false;
            --institutionCount;
            ++epoch;
            emit InstitutionRemoved(subject);
        } else if (action == Action.AdmitResearcher) {
            isResearcher[subject] = true;
            emit ResearcherAdmitted(subject);
        } else {
            isResearcher[subject] = false;
            emit ResearcherRemoved(subject);
        }
    }

    function _addInstitution(address account) private {
        if (account == address(0)) revert ZeroAddress();
        if (isInstitution[account]) revert AlreadyInstitution(account);
        isInstitution[account] = true;
        ++institutionCount;
        ++epoch;
        emit InstitutionAdded(account);
    }
}
