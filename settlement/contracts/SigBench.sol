// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Ed25519} from "./Ed25519.sol";

/// @title Measures the gas of the two signature schemes the escrow could check (spec/settlement.md).
/// Each function returns the verdict and the gas spent on verification alone (gasleft before and
/// after), so that calldata and transaction overhead do not blur the comparison.
contract SigBench {
    bytes32 private constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// The struct a secp256k1 design would sign: the update's fields plus the hash of its 152
    /// canonical bytes, which binds it to the ed25519-signed update the peer checks.
    bytes32 private constant UPDATE_TYPEHASH =
        keccak256("ChannelUpdate(bytes32 channel,uint64 nonce,uint128 cumulative,bytes32 canonicalHash)");

    /// ed25519 over the 152-byte update.
    function ed25519(bytes32 key, bytes32 sigR, bytes32 sigS, bytes calldata message)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        bytes memory m = message;
        uint256 before = gasleft();
        ok = Ed25519.verify(key, sigR, sigS, m);
        gasUsed = before - gasleft();
    }

    /// EIP-712 secp256k1 over the same update (ecrecover and the struct hashing it needs).
    function eip712(address signer, bytes calldata message, uint8 v, bytes32 r, bytes32 s)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        bytes memory m = message;
        uint256 before = gasleft();
        bytes32 channel;
        uint64 nonce;
        uint128 cumulative;
        assembly ("memory-safe") {
            channel := mload(add(m, 0x40))
            nonce := shr(192, mload(add(m, 0xa0)))
            cumulative := shr(128, mload(add(m, 0xa8)))
        }
        bytes32 domain = keccak256(
            abi.encode(EIP712_DOMAIN_TYPEHASH, keccak256("babeld-rs escrow"), keccak256("1"), block.chainid, address(this))
        );
        bytes32 structHash = keccak256(abi.encode(UPDATE_TYPEHASH, channel, nonce, cumulative, keccak256(m)));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domain, structHash));
        ok = ecrecover(digest, v, r, s) == signer && signer != address(0);
        gasUsed = before - gasleft();
    }

    /// Exposed for the verifier's own tests.
    function sha512(bytes calldata data) external pure returns (bytes32, bytes32) {
        return Ed25519.sha512(data);
    }

    function validKey(bytes32 key) external view returns (bool) {
        return Ed25519.validKey(key);
    }
}
