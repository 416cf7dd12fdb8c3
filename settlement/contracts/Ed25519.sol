// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title Ed25519 signature verification (RFC 8032 section 5.1.7), strict.
/// @notice Rejects what ed25519-dalek's `verify_strict` rejects: S >= L, encodings that do not
/// decompress, non-canonical R, and small-order R or A. A public key with a non-canonical
/// encoding (y >= p) is rejected too (`validKey`), which the escrow checks once when a channel is
/// opened, so that no update a peer accepted can fail on chain because of its key's encoding.
/// Arithmetic: twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19), extended
/// coordinates (Hisil, Wong, Carter, Dawson 2008), [S]B - [k]A by one interleaved double-and-add.
library Ed25519 {
    uint256 internal constant P = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed;
    uint256 internal constant L = 0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed;
    uint256 internal constant D = 0x52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3;
    uint256 internal constant D2 = 0x2406d9dc56dffce7198e80f2eef3d13000e0149a8283b156ebd69b9426b2f159;
    uint256 internal constant SQRT_M1 = 0x2b8324804fc1df0b2b4d00993dfbd7a72f431806ad2fe478c4ee1b274a0ea0b0;
    /// 2^256 mod L, to reduce a 512-bit digest.
    uint256 internal constant R256_MOD_L = 0x0ffffffffffffffffffffffffffffffec6ef5bf4737dcf70d6ec31748d98951d;
    uint256 internal constant BX = 0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a;
    uint256 internal constant BY = 0x6666666666666666666666666666666666666666666666666666666666666658;

    /// Verifies `sig = R || S` by public key `a` over `message`.
    function verify(bytes32 a, bytes32 r, bytes32 s, bytes memory message) internal view returns (bool) {
        uint256 sv = reverse(uint256(s));
        if (sv >= L) return false;
        (bool okA, uint256 ax, uint256 ay) = decompress(a);
        if (!okA || smallOrder(ax, ay)) return false;
        (bool okR, uint256 rx, uint256 ry) = decompress(r);
        if (!okR || smallOrder(rx, ry)) return false;
        (bytes32 h0, bytes32 h1) = sha512(abi.encodePacked(r, a, message));
        uint256 k = addmod(mulmod(reverse(uint256(h1)), R256_MOD_L, L), reverse(uint256(h0)), L);
        // [S]B + [k](-A) must equal R.
        (uint256 qx, uint256 qy, uint256 qz) = doubleMul(sv, k, P - ax, ay);
        return qx == mulmod(rx, qz, P) && qy == mulmod(ry, qz, P);
    }

    /// A public key the escrow accepts: canonical, on the curve, not of small order.
    function validKey(bytes32 a) internal view returns (bool) {
        (bool ok, uint256 x, uint256 y) = decompress(a);
        return ok && !smallOrder(x, y);
    }

    /// Decodes a 32-byte little-endian point encoding (RFC 8032 section 5.1.3). Fails for y >= p,
    /// points not on the curve, and x = 0 with the sign bit set (non-canonical).
    function decompress(bytes32 enc) internal view returns (bool ok, uint256 x, uint256 y) {
        uint256 v = reverse(uint256(enc));
        uint256 sign = v >> 255;
        y = v & ((1 << 255) - 1);
        if (y >= P) return (false, 0, 0);
        uint256 yy = mulmod(y, y, P);
        uint256 u = addmod(yy, P - 1, P);
        uint256 w = addmod(mulmod(D, yy, P), 1, P);
        uint256 w3 = mulmod(mulmod(w, w, P), w, P);
        uint256 w7 = mulmod(mulmod(w3, w3, P), w, P);
        x = mulmod(mulmod(u, w3, P), expmod(mulmod(u, w7, P), (P - 5) / 8), P);
        uint256 check = mulmod(w, mulmod(x, x, P), P);
        if (check != u) {
            if (check != P - u) return (false, 0, 0);
            x = mulmod(x, SQRT_M1, P);
        }
        if (x == 0 && sign == 1) return (false, 0, 0);
        if (x & 1 != sign) x = P - x;
        return (true, x, y);
    }

    /// True when [8]P is the identity, i.e. P is one of the eight torsion points.
    function smallOrder(uint256 x, uint256 y) internal pure returns (bool) {
        (uint256 X, uint256 Y, uint256 Z, ) = dbl(x, y, 1);
        (X, Y, Z, ) = dbl(X, Y, Z);
        (X, , , ) = dbl(X, Y, Z);
        return X == 0;
    }

    /// [s]B + [k]Q for Q = (qx, qy) affine; returns projective X, Y, Z. One interleaved
    /// double-and-add over the bits of both scalars (Straus), with B, Q and B + Q precomputed in
    /// the form the addition needs (Y + X, Y - X, 2Z, 2dT). In assembly: it is the hot loop.
    function doubleMul(uint256 s, uint256 k, uint256 qx, uint256 qy)
        internal
        pure
        returns (uint256 x, uint256 y, uint256 z)
    {
        assembly ("memory-safe") {
            // dbl-2008-hwcd with a = -1.
            function dbl(x1, y1, z1) -> x3, y3, z3, t3 {
                let p := 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed
                let a := mulmod(x1, x1, p)
                let b := mulmod(y1, y1, p)
                let c := mulmod(2, mulmod(z1, z1, p), p)
                let e := addmod(x1, y1, p)
                e := addmod(mulmod(e, e, p), sub(p, addmod(a, b, p)), p)
                let g := addmod(b, sub(p, a), p)
                c := addmod(g, sub(p, c), p) // F
                a := sub(p, addmod(a, b, p)) // H (p itself only ever enters mulmod)
                x3 := mulmod(e, c, p)
                y3 := mulmod(g, a, p)
                z3 := mulmod(c, g, p)
                t3 := mulmod(e, a, p)
            }
            // add-2008-hwcd-3 with the second point cached at q as (Y + X, Y - X, 2Z, 2dT).
            function addp(x1, y1, z1, t1, q) -> x3, y3, z3, t3 {
                let p := 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed
                let a := mulmod(addmod(y1, sub(p, x1), p), mload(add(q, 32)), p)
                let b := mulmod(addmod(y1, x1, p), mload(q), p)
                let c := mulmod(t1, mload(add(q, 96)), p)
                let d := mulmod(z1, mload(add(q, 64)), p)
                let e := addmod(b, sub(p, a), p)
                b := addmod(b, a, p) // H
                a := addmod(d, sub(p, c), p) // F
                d := addmod(d, c, p) // G
                x3 := mulmod(e, a, p)
                y3 := mulmod(d, b, p)
                t3 := mulmod(e, b, p)
                z3 := mulmod(a, d, p)
            }
            function cache(ptr, px, py, pz, pt) {
                let p := 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed
                mstore(ptr, addmod(py, px, p))
                mstore(add(ptr, 32), addmod(py, sub(p, px), p))
                mstore(add(ptr, 64), addmod(pz, pz, p))
                mstore(add(ptr, 96), mulmod(pt, 0x2406d9dc56dffce7198e80f2eef3d13000e0149a8283b156ebd69b9426b2f159, p))
            }
            let p := 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed
            let bx := 0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a
            let by := 0x6666666666666666666666666666666666666666666666666666666666666658
            let table := mload(0x40)
            mstore(0x40, add(table, 384))
            cache(table, bx, by, 1, mulmod(bx, by, p))
            cache(add(table, 128), qx, qy, 1, mulmod(qx, qy, p))
            let sx, sy, sz, st := addp(bx, by, 1, mulmod(bx, by, p), add(table, 128))
            cache(add(table, 256), sx, sy, sz, st)
            x := 0
            y := 1
            z := 1
            let t := 0
            for { let i := 253 } gt(i, 0) {} {
                i := sub(i, 1)
                x, y, z, t := dbl(x, y, z)
                let idx := or(and(shr(i, s), 1), shl(1, and(shr(i, k), 1)))
                if idx { x, y, z, t := addp(x, y, z, t, add(table, mul(sub(idx, 1), 128))) }
            }
        }
    }

    /// Doubling, dbl-2008-hwcd with a = -1. Returns X, Y, Z, T.
    function dbl(uint256 x, uint256 y, uint256 z) internal pure returns (uint256, uint256, uint256, uint256) {
        uint256 a = mulmod(x, x, P);
        uint256 b = mulmod(y, y, P);
        uint256 c = mulmod(2, mulmod(z, z, P), P);
        uint256 xy = addmod(x, y, P);
        // e = (x + y)^2 - a - b
        uint256 e = addmod(mulmod(xy, xy, P), P - addmod(a, b, P), P);
        uint256 g = addmod(b, P - a, P); // D + B with D = -A
        uint256 f = addmod(g, P - c, P);
        uint256 h = P - addmod(a, b, P); // D - B
        if (h == P) h = 0;
        return (mulmod(e, f, P), mulmod(g, h, P), mulmod(f, g, P), mulmod(e, h, P));
    }

    /// base^e mod P through the modexp precompile (EIP-198).
    function expmod(uint256 base, uint256 e) internal view returns (uint256 result) {
        bool ok;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 32)
            mstore(add(m, 0x20), 32)
            mstore(add(m, 0x40), 32)
            mstore(add(m, 0x60), base)
            mstore(add(m, 0x80), e)
            mstore(add(m, 0xa0), P)
            ok := staticcall(gas(), 0x05, m, 0xc0, m, 0x20)
            result := mload(m)
        }
        require(ok, "modexp");
    }

    /// Byte order reversal of a 256-bit word (little-endian encodings to integers).
    function reverse(uint256 v) internal pure returns (uint256) {
        v = ((v & 0xFF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00) >> 8)
            | ((v & 0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF) << 8);
        v = ((v & 0xFFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000) >> 16)
            | ((v & 0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF) << 16);
        v = ((v & 0xFFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000) >> 32)
            | ((v & 0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF) << 32);
        v = ((v & 0xFFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF0000000000000000) >> 64)
            | ((v & 0x0000000000000000FFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF) << 64);
        return (v >> 128) | (v << 128);
    }

    /// SHA-512 (FIPS 180-4); the EVM has no precompile for it. Returns the 64-byte digest as two
    /// words in digest byte order.
    function sha512(bytes memory data) internal pure returns (bytes32, bytes32) {
        uint64[80] memory k = [
            0x428a2f98d728ae22,
            0x7137449123ef65cd,
            0xb5c0fbcfec4d3b2f,
            0xe9b5dba58189dbbc,
            0x3956c25bf348b538,
            0x59f111f1b605d019,
            0x923f82a4af194f9b,
            0xab1c5ed5da6d8118,
            0xd807aa98a3030242,
            0x12835b0145706fbe,
            0x243185be4ee4b28c,
            0x550c7dc3d5ffb4e2,
            0x72be5d74f27b896f,
            0x80deb1fe3b1696b1,
            0x9bdc06a725c71235,
            0xc19bf174cf692694,
            0xe49b69c19ef14ad2,
            0xefbe4786384f25e3,
            0x0fc19dc68b8cd5b5,
            0x240ca1cc77ac9c65,
            0x2de92c6f592b0275,
            0x4a7484aa6ea6e483,
            0x5cb0a9dcbd41fbd4,
            0x76f988da831153b5,
            0x983e5152ee66dfab,
            0xa831c66d2db43210,
            0xb00327c898fb213f,
            0xbf597fc7beef0ee4,
            0xc6e00bf33da88fc2,
            0xd5a79147930aa725,
            0x06ca6351e003826f,
            0x142929670a0e6e70,
            0x27b70a8546d22ffc,
            0x2e1b21385c26c926,
            0x4d2c6dfc5ac42aed,
            0x53380d139d95b3df,
            0x650a73548baf63de,
            0x766a0abb3c77b2a8,
            0x81c2c92e47edaee6,
            0x92722c851482353b,
            0xa2bfe8a14cf10364,
            0xa81a664bbc423001,
            0xc24b8b70d0f89791,
            0xc76c51a30654be30,
            0xd192e819d6ef5218,
            0xd69906245565a910,
            0xf40e35855771202a,
            0x106aa07032bbd1b8,
            0x19a4c116b8d2d0c8,
            0x1e376c085141ab53,
            0x2748774cdf8eeb99,
            0x34b0bcb5e19b48a8,
            0x391c0cb3c5c95a63,
            0x4ed8aa4ae3418acb,
            0x5b9cca4f7763e373,
            0x682e6ff3d6b2b8a3,
            0x748f82ee5defb2fc,
            0x78a5636f43172f60,
            0x84c87814a1f0ab72,
            0x8cc702081a6439ec,
            0x90befffa23631e28,
            0xa4506cebde82bde9,
            0xbef9a3f7b2c67915,
            0xc67178f2e372532b,
            0xca273eceea26619c,
            0xd186b8c721c0c207,
            0xeada7dd6cde0eb1e,
            0xf57d4f7fee6ed178,
            0x06f067aa72176fba,
            0x0a637dc5a2c898a6,
            0x113f9804bef90dae,
            0x1b710b35131c471b,
            0x28db77f523047d84,
            0x32caab7b40c72493,
            0x3c9ebe0a15c9bebc,
            0x431d67c49c100d4c,
            0x4cc5d4becb3e42b6,
            0x597f299cfc657e2a,
            0x5fcb6fab3ad6faec,
            0x6c44198c4a475817
        ];
        uint64[8] memory h = [
            0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
            0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179
        ];
        uint256 len = data.length;
        uint256 total = ((len + 17 + 127) / 128) * 128;
        // Padding: 0x80, zeros, then the length in bits as a 128-bit big-endian number.
        bytes memory m = bytes.concat(data, bytes1(0x80), new bytes(total - len - 17), bytes16(uint128(len * 8)));
        assembly ("memory-safe") {
            function twice(x) -> r {
                r := or(x, shl(64, x))
            }
            let mask := 0xffffffffffffffff
            let w := mload(0x40)
            // w: 80 words of message schedule, then the a and e sequences of 84 words each.
            mstore(0x40, add(w, 7936))
            let body := add(m, 32)
            for { let off := 0 } lt(off, total) { off := add(off, 128) } {
                for { let t := 0 } lt(t, 16) { t := add(t, 1) } {
                    mstore(add(w, shl(5, t)), shr(192, mload(add(body, add(off, shl(3, t))))))
                }
                for { let t := 16 } lt(t, 80) { t := add(t, 1) } {
                    let x15 := mload(add(w, shl(5, sub(t, 15))))
                    let x2 := mload(add(w, shl(5, sub(t, 2))))
                    // Rotations of a 64-bit x are shifts of x placed twice (x << 64 | x), masked once.
                    let s0 := xor(and(xor(shr(1, twice(x15)), shr(8, twice(x15))), mask), shr(7, x15))
                    let s1 := xor(and(xor(shr(19, twice(x2)), shr(61, twice(x2))), mask), shr(6, x2))
                    mstore(
                        add(w, shl(5, t)),
                        and(add(add(s1, mload(add(w, shl(5, sub(t, 7))))), add(s0, mload(add(w, shl(5, sub(t, 16)))))), mask)
                    )
                }
                // The eight working variables live in memory as two sequences: round t reads
                // a..d from av[t+3..t] and e..h from ev[t+3..t] and appends the new a and e, so
                // nothing rotates and the stack stays shallow.
                let av := add(w, 2560)
                let ev := add(av, 2688)
                mstore(add(av, 96), mload(h))
                mstore(add(av, 64), mload(add(h, 32)))
                mstore(add(av, 32), mload(add(h, 64)))
                mstore(av, mload(add(h, 96)))
                mstore(add(ev, 96), mload(add(h, 128)))
                mstore(add(ev, 64), mload(add(h, 160)))
                mstore(add(ev, 32), mload(add(h, 192)))
                mstore(ev, mload(add(h, 224)))
                for { let t := 0 } lt(t, 80) { t := add(t, 1) } {
                    let at := add(av, shl(5, t))
                    let et := add(ev, shl(5, t))
                    let e := mload(add(et, 96))
                    let ee := twice(e)
                    let t1 := add(
                        add(mload(et), and(xor(xor(shr(14, ee), shr(18, ee)), shr(41, ee)), mask)),
                        add(
                            xor(and(e, mload(add(et, 64))), and(not(e), mload(add(et, 32)))),
                            add(mload(add(k, shl(5, t))), mload(add(w, shl(5, t))))
                        )
                    )
                    let a := mload(add(at, 96))
                    let b := mload(add(at, 64))
                    let c := mload(add(at, 32))
                    let aa := twice(a)
                    let sigma0 := and(xor(xor(shr(28, aa), shr(34, aa)), shr(39, aa)), mask)
                    mstore(add(at, 128), and(add(t1, add(sigma0, xor(xor(and(a, b), and(a, c)), and(b, c)))), mask))
                    mstore(add(et, 128), and(add(mload(at), t1), mask))
                }
                for { let i := 0 } lt(i, 4) { i := add(i, 1) } {
                    let from := shl(5, sub(83, i))
                    let hi := add(h, shl(5, i))
                    mstore(hi, and(add(mload(hi), mload(add(av, from))), mask))
                    let hj := add(hi, 128)
                    mstore(hj, and(add(mload(hj), mload(add(ev, from))), mask))
                }
            }
        }
        uint256 hi = (uint256(h[0]) << 192) | (uint256(h[1]) << 128) | (uint256(h[2]) << 64) | uint256(h[3]);
        uint256 lo = (uint256(h[4]) << 192) | (uint256(h[5]) << 128) | (uint256(h[6]) << 64) | uint256(h[7]);
        return (bytes32(hi), bytes32(lo));
    }
}
