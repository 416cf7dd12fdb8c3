// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Ed25519} from "./Ed25519.sol";

/// @title Escrow for babeld-rs one-way payment channels.
/// @notice A payer locks a deposit for one payee. Off chain the payer signs, with its ed25519
/// channel key, updates carrying the cumulative amount paid so far (the 152-byte layout of the
/// `payments` crate). The payee redeems the best update at any time; either side closes
/// cooperatively with the other's signature on a close message; the payer closes unilaterally
/// with a challenge period during which the best update may still be presented, after which the
/// rest of the deposit returns to the payer. Specification: spec/settlement.md.
contract Escrow {
    /// First 32 bytes of a signed channel update (zero-padded ASCII).
    bytes32 public constant UPDATE_TAG = "babeld-rs channel update v1";
    /// First 32 bytes of a signed cooperative close, same layout as an update otherwise.
    bytes32 public constant CLOSE_TAG = "babeld-rs channel close v1";
    /// Domain of the channel id hash.
    bytes32 public constant CHANNEL_TAG = "babeld-rs escrow channel v1";
    /// Bounds of the challenge period a payer may choose (the payee checks its own minimum).
    uint64 public constant MIN_CHALLENGE = 60;
    uint64 public constant MAX_CHALLENGE = 30 days;

    struct Channel {
        address payer; // Ethereum account that deposits and gets the rest back
        uint64 challengePeriod; // seconds
        address payee; // Ethereum account redemptions are paid to
        uint64 closingAt; // end of the challenge period once a unilateral close started, else 0
        bytes32 payerKey; // ed25519 key that signs updates
        bytes32 payeeKey; // ed25519 key that signs cooperative closes
        uint128 deposit; // everything deposited so far
        uint128 paid; // everything paid out to the payee so far
        uint128 best; // highest cumulative amount presented
        uint64 bestNonce; // nonce of that update
        bool closed;
    }

    mapping(bytes32 => Channel) public channels;
    /// Payouts whose transfer failed (a recipient contract that refuses ether); see withdraw.
    mapping(address => uint256) public owed;

    event Opened(bytes32 indexed id, address indexed payer, address indexed payee, uint128 deposit, uint64 challengePeriod);
    event ToppedUp(bytes32 indexed id, uint128 deposit);
    event Redeemed(bytes32 indexed id, uint64 nonce, uint128 cumulative, uint128 paidOut);
    event CloseStarted(bytes32 indexed id, uint64 closingAt);
    event Closed(bytes32 indexed id, uint128 toPayee, uint128 toPayer);

    error UnknownChannel();
    error ChannelExists();
    error NotOpen();
    error NotPayer();
    error NotParty();
    error NotPayee();
    error BadKey();
    error BadChallengePeriod();
    error ZeroDeposit();
    error DepositTooLarge();
    error NotNewer();
    error BadSignature();
    error ChallengeOver();
    error ChallengeRunning();
    error NothingOwed();

    /// The channel id: binds the chain, this contract, both accounts, both ed25519 keys and a
    /// salt chosen by the payer. Ids are never reused, so an update of a closed channel cannot be
    /// replayed on a later one between the same parties.
    function channelId(address payer, address payee, bytes32 payerKey, bytes32 payeeKey, bytes32 salt)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(CHANNEL_TAG, block.chainid, address(this), payer, payee, payerKey, payeeKey, salt));
    }

    /// Opens a channel from msg.sender to `payee` with msg.value as its deposit.
    function open(address payee, bytes32 payerKey, bytes32 payeeKey, bytes32 salt, uint64 challengePeriod)
        external
        payable
        returns (bytes32 id)
    {
        if (msg.value == 0) revert ZeroDeposit();
        if (msg.value > type(uint128).max) revert DepositTooLarge();
        if (challengePeriod < MIN_CHALLENGE || challengePeriod > MAX_CHALLENGE) revert BadChallengePeriod();
        if (payee == address(0) || !Ed25519.validKey(payerKey) || !Ed25519.validKey(payeeKey)) revert BadKey();
        id = channelId(msg.sender, payee, payerKey, payeeKey, salt);
        Channel storage ch = channels[id];
        if (ch.payer != address(0)) revert ChannelExists();
        ch.payer = msg.sender;
        ch.payee = payee;
        ch.challengePeriod = challengePeriod;
        ch.payerKey = payerKey;
        ch.payeeKey = payeeKey;
        ch.deposit = uint128(msg.value);
        emit Opened(id, msg.sender, payee, uint128(msg.value), challengePeriod);
    }

    /// Adds msg.value to an open channel's deposit (payer only, not once a close started).
    function topUp(bytes32 id) external payable {
        Channel storage ch = channels[id];
        if (ch.payer == address(0)) revert UnknownChannel();
        if (msg.sender != ch.payer) revert NotPayer();
        if (ch.closed || ch.closingAt != 0) revert NotOpen();
        if (msg.value == 0) revert ZeroDeposit();
        if (msg.value > type(uint128).max) revert DepositTooLarge();
        ch.deposit += uint128(msg.value);
        emit ToppedUp(id, ch.deposit);
    }

    /// Presents an update signed by the payer (anyone may submit it; the money goes to the payee).
    /// Accepted while the channel is open or its challenge period runs, if its cumulative amount
    /// is above the best one presented so far: only the payer signs, so the amount it committed
    /// to, not the nonce, decides which update is newer. Pays the payee up to the deposit.
    function redeem(bytes32 id, uint64 nonce, uint128 cumulative, bytes32 sigR, bytes32 sigS) external {
        Channel storage ch = _live(id);
        _present(ch, id, nonce, cumulative, sigR, sigS);
    }

    /// Starts a unilateral close (payer only). The payer may present an update with it; the payee
    /// (or its watchtower) can present a better one until `closingAt`.
    function startClose(bytes32 id) external {
        _startClose(_live(id), id);
    }

    /// startClose with an update presented first.
    function startCloseWithUpdate(bytes32 id, uint64 nonce, uint128 cumulative, bytes32 sigR, bytes32 sigS)
        external
    {
        Channel storage ch = _live(id);
        _present(ch, id, nonce, cumulative, sigR, sigS);
        _startClose(ch, id);
    }

    /// Ends a unilateral close after its challenge period: the rest of the deposit goes to the
    /// payer. Anyone may call it.
    function finalize(bytes32 id) external {
        Channel storage ch = channels[id];
        if (ch.payer == address(0)) revert UnknownChannel();
        if (ch.closed) revert NotOpen();
        if (ch.closingAt == 0 || block.timestamp < ch.closingAt) revert ChallengeRunning();
        _close(ch, id);
    }

    /// The payee closes at once (it only gives up updates it has not presented): the rest of the
    /// deposit goes back to the payer.
    function closeByPayee(bytes32 id) external {
        Channel storage ch = _live(id);
        if (msg.sender != ch.payee) revert NotPayee();
        _close(ch, id);
    }

    /// Cooperative close: sent by one party with the other party's ed25519 signature over the
    /// close message (CLOSE_TAG, id, payerKey, payeeKey, nonce, final cumulative amount). The
    /// payee gets the final amount (up to the deposit), the payer the rest, at once.
    function closeCooperative(bytes32 id, uint64 nonce, uint128 cumulative, bytes32 sigR, bytes32 sigS) external {
        Channel storage ch = _live(id);
        bytes32 signer;
        if (msg.sender == ch.payer) signer = ch.payeeKey;
        else if (msg.sender == ch.payee) signer = ch.payerKey;
        else revert NotParty();
        if (cumulative < ch.best) revert NotNewer();
        bytes memory message = abi.encodePacked(CLOSE_TAG, id, ch.payerKey, ch.payeeKey, nonce, cumulative);
        if (!Ed25519.verify(signer, sigR, sigS, message)) revert BadSignature();
        ch.best = cumulative;
        ch.bestNonce = nonce;
        _close(ch, id);
    }

    /// Takes out a payout whose transfer had failed.
    function withdraw() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        owed[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) owed[msg.sender] = amount;
    }

    /// The 152 bytes the payer signs for an update (the `payments` crate's canonical layout).
    function updateBytes(bytes32 id, uint64 nonce, uint128 cumulative) public view returns (bytes memory) {
        Channel storage ch = channels[id];
        return abi.encodePacked(UPDATE_TAG, id, ch.payerKey, ch.payeeKey, nonce, cumulative);
    }

    /// A channel that exists, is not closed and whose challenge period (if any) has not ended.
    function _live(bytes32 id) private view returns (Channel storage ch) {
        ch = channels[id];
        if (ch.payer == address(0)) revert UnknownChannel();
        if (ch.closed) revert NotOpen();
        if (ch.closingAt != 0 && block.timestamp >= ch.closingAt) revert ChallengeOver();
    }

    function _present(Channel storage ch, bytes32 id, uint64 nonce, uint128 cumulative, bytes32 sigR, bytes32 sigS)
        private
    {
        if (cumulative <= ch.best) revert NotNewer();
        bytes memory message = abi.encodePacked(UPDATE_TAG, id, ch.payerKey, ch.payeeKey, nonce, cumulative);
        if (!Ed25519.verify(ch.payerKey, sigR, sigS, message)) revert BadSignature();
        ch.best = cumulative;
        ch.bestNonce = nonce;
        uint128 due = (cumulative < ch.deposit ? cumulative : ch.deposit) - ch.paid;
        ch.paid += due;
        emit Redeemed(id, nonce, cumulative, due);
        _pay(ch.payee, due);
    }

    function _startClose(Channel storage ch, bytes32 id) private {
        if (msg.sender != ch.payer) revert NotPayer();
        if (ch.closingAt != 0) revert ChallengeRunning();
        ch.closingAt = uint64(block.timestamp) + ch.challengePeriod;
        emit CloseStarted(id, ch.closingAt);
    }

    function _close(Channel storage ch, bytes32 id) private {
        uint128 owedPayee = (ch.best < ch.deposit ? ch.best : ch.deposit) - ch.paid;
        ch.paid += owedPayee;
        uint128 toPayer = ch.deposit - ch.paid;
        ch.closed = true;
        emit Closed(id, owedPayee, toPayer);
        _pay(ch.payee, owedPayee);
        _pay(ch.payer, toPayer);
    }

    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) owed[to] += amount;
    }
}
