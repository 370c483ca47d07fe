//! The interleaved layout of Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K matrices: the one the
//! x86 single-token kernels read (see `x86::dot_rows_x8`), made once when a model loads.
//!
//! In GGUF each row is its blocks one after another (a Q5_0 block: an f16 scale, 32 fifth bits,
//! 16 bytes of nibbles). A kernel that takes one block of eight rows at a time then gathers the
//! eight scales one by one and assembles its vectors from eight separate 16-byte loads, and for
//! Q5_0 it reshuffles the fifth bits into byte masks: on an AMD EPYC that bookkeeping, not
//! memory, set the speed (Q5_0 ran at 35 GB/s from cache against a core that reads 36 from
//! memory). Interleaved, each whole group of eight rows holds, block by block, the fields of
//! its eight blocks side by side:
//!
//! | bytes (Q4_0 / Q4_1 / Q5_0) | what |
//! |---|---|
//! | `0..16` | the eight scales (f16), row `r` at `2r` |
//! | Q4_1 `16..32` | the eight minimums (f16) |
//! | Q5_0 `16..48` | the fifth bits as four u64 words, two per half `h` of the group (rows `4h..4h + 4`, words `x0`, `x1` at `16 + 16h`, `24 + 16h`): bit `r` (0-3) of byte `k` of `x_c` is row `4h + r`'s fifth bit of element `8c + k`, bit `4 + r` that of element `16 + 8c + k`. A kernel holds a pair of rows' codes as 32-byte vectors of low and high nibbles (pair `p` of the half: rows `4h + 2p`, `4h + 2p + 1`, 16 bytes each); the half's 16 bytes broadcast to every 128 bits put in 64-bit lane `L` (of four) the word whose bits `2p + L / 2` (low nibbles) and `4 + 2p + L / 2` (high) are that lane's eight code bytes' fifth bits, so one shift per lane brings every byte's bit to its bit 4 |
//! | `16..144` / `32..160` / `48..176` | the eight rows' 16 bytes of nibbles, row `r` at `16r` |
//! | Q8_0 `16..272` | the eight rows' 32 codes, row `r` at `32r` |
//!
//! The k-quants (blocks of 256 values) are laid out for a kernel that takes two rows to a
//! 512-bit vector, rows `2h` and `2h + 1` (a *pair*, `h` = 0..4; the AVX2 kernel reads a pair's
//! rows one at a time, 32 bytes at a stride of 64):
//!
//! | bytes (Q4_K, Q5_K / Q6_K) | what |
//! |---|---|
//! | `0..16` | the eight `d` (f16), row `r` at `2r` |
//! | Q4_K, Q5_K `16..32` | the eight `dmin` (f16) |
//! | Q4_K, Q5_K `32..128` | the eight rows' 6-bit scales and mins, unpacked from GGUF's 12 bytes per row into two planes: with `sc[8r + j]` and `mn[8r + j]` row `r`'s scale and min `j`, byte `32 + i` (`i` < 64) holds the low nibbles of `sc[i]` (bits 0-3) and `mn[i]` (bits 4-7), byte `96 + i` (`i` < 32) the top two bits of `sc[i]`, `sc[32 + i]`, `mn[i]` and `mn[32 + i]` (bits 0-1, 2-3, 4-5, 6-7) |
//! | Q6_K `16..144` | the eight rows' 16 signed scales, row `r` at `16 + 16r` |
//! | `128..` / `144..` | the pairs' codes (Q5_K: fifth bits then nibbles; Q6_K: low bits then high bits, as GGUF orders them), pair `h` after pair `h - 1`: its rows' code bytes 32 at a time, row `2h` then row `2h + 1` |
//!
//! so that each 64-byte load of a pair holds the same 32 code bytes of both its rows, and the
//! scales of all eight rows unpack with a handful of vector instructions.
//!
//! A group takes the same bytes as its eight GGUF rows and the same place (rows `8g..8g + 8`
//! are the bytes `8g · row_bytes ..`); rows after the last whole group keep the GGUF layout.
//! Every other reader (prompts, other instruction sets, a row's values) asks for GGUF rows back
//! through [`standard_rows`] or a block at a time through [`unpack`].

use super::BlockType;

/// Rows in a group.
pub const GROUP_ROWS: usize = 8;

/// Whether matrices of this type can be interleaved.
pub fn covers(ty: BlockType) -> bool {
    head(ty).is_some() || k_layout(ty).is_some()
}

/// Where a k-quant block's fields are, in GGUF and in a group block.
struct KLayout {
    /// GGUF: where the code bytes start, how many there are, where `d` is.
    code_start: usize,
    code_len: usize,
    d: usize,
    /// Group block: where the pairs' codes start.
    codes_at: usize,
}

const fn k_layout(ty: BlockType) -> Option<KLayout> {
    match ty {
        BlockType::Q4_K => Some(KLayout {
            code_start: 16,
            code_len: 128,
            d: 0,
            codes_at: 128,
        }),
        BlockType::Q5_K => Some(KLayout {
            code_start: 16,
            code_len: 160,
            d: 0,
            codes_at: 128,
        }),
        BlockType::Q6_K => Some(KLayout {
            code_start: 0,
            code_len: 192,
            d: 208,
            codes_at: 144,
        }),
        _ => None,
    }
}

/// Where Q4_K's and Q5_K's `dmin` start in a group block.
pub const K_DMIN_AT: usize = 16;
/// Where the low-nibble plane of Q4_K's and Q5_K's scales and mins starts in a group block.
pub const K_LOW_AT: usize = 32;
/// Where the top-bits plane of Q4_K's and Q5_K's scales and mins starts in a group block.
pub const K_HIGH_AT: usize = 96;
/// Where Q6_K's scales start in a group block.
pub const K6_SCALES_AT: usize = 16;

/// Where a k-quant group block's pair `h` (rows `2h`, `2h + 1`) starts.
pub const fn k_pair_at(ty: BlockType, h: usize) -> usize {
    match k_layout(ty) {
        Some(l) => l.codes_at + h * 2 * l.code_len,
        None => 0,
    }
}

/// Where a k-quant block's code bytes start in GGUF (a kernel reading GGUF offset `at` of row
/// `2h + i` finds it at `k_pair_at(ty, h) + 2 · (at - k_code_start(ty)) + 32i` when `at -
/// k_code_start(ty)` is a multiple of 32).
pub const fn k_code_start(ty: BlockType) -> usize {
    match k_layout(ty) {
        Some(l) => l.code_start,
        None => 0,
    }
}

/// Where code byte `o` (counted from the first) of row `r` is in a k-quant group block.
const fn k_code_pos(ty: BlockType, r: usize, o: usize) -> usize {
    k_pair_at(ty, r / 2) + (o / 32) * 64 + (r % 2) * 32 + o % 32
}

/// Row `r`'s eight scales and eight mins of a Q4_K or Q5_K group block `g`.
pub fn k4_scales_mins(g: &[u8], r: usize) -> ([u8; 8], [u8; 8]) {
    let (sc, mn) = k4_scales_mins_packed(g, r);
    (sc.to_le_bytes(), mn.to_le_bytes())
}

/// [`k4_scales_mins`] as the bytes of two u64 (scale or min `j` in byte `j`), from one 8-byte
/// word of each plane: row `r`'s low nibbles are bytes `8r..8r + 8` of the low plane, its top
/// bits those of the top-bits plane's bytes `8(r % 4)..` shifted by `2 · (r / 4)`.
pub fn k4_scales_mins_packed(g: &[u8], r: usize) -> (u64, u64) {
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&g[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let low = word(K_LOW_AT + 8 * r);
    let high = word(K_HIGH_AT + 8 * (r % 4)) >> (2 * (r / 4));
    let (nibble, two) = (0x0f0f_0f0f_0f0f_0f0f_u64, 0x0303_0303_0303_0303_u64);
    (
        low & nibble | (high & two) << 4,
        low >> 4 & nibble | (high >> 4 & two) << 4,
    )
}

/// Bytes of a block's fields before its codes (`None`: not interleaved).
const fn head(ty: BlockType) -> Option<usize> {
    match ty {
        BlockType::Q4_0 | BlockType::Q8_0 => Some(2),
        BlockType::Q4_1 => Some(4),
        BlockType::Q5_0 => Some(6),
        _ => None,
    }
}

/// Where Q4_1's minimums and Q5_0's fifth-bit masks start in a group block (after the scales).
pub const SECOND_AT: usize = 16;

/// Where the rows' codes start in a group block of a covered type.
pub const fn codes_at(ty: BlockType) -> usize {
    match head(ty) {
        Some(h) => GROUP_ROWS * h,
        None => 0,
    }
}

/// Q5_0 row `i`'s 32 fifth bits (as its GGUF block holds them) from the two words of its half of
/// the group (`x0` at `SECOND_AT + 16 · (i / 4)`, `x1` 8 bytes after it).
pub fn q5_0_bits(x0: u64, x1: u64, i: usize) -> u32 {
    // Bit `bit` of each of a word's eight bytes, byte k's to bit k (one multiply gathers them
    // into the top byte: every product lands on its own bit, so nothing carries).
    let gather = |w: u64, bit: usize| {
        (((w >> bit) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    let r = i % 4;
    gather(x0, r) | gather(x1, r) << 8 | gather(x0, 4 + r) << 16 | gather(x1, 4 + r) << 24
}

/// Each byte's eight bits spread over eight bytes: bit `k` of `i` is bit 0 of byte `k` of
/// `SPREAD[i]` (how [`pack`] lays out Q5_0's fifth bits, a byte of them at a time).
static SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut k = 0;
        while k < 8 {
            t[i] |= ((i as u64 >> k) & 1) << (8 * k);
            k += 1;
        }
        i += 1;
    }
    t
};

/// Bytes of a block's codes: 16 of nibbles, or Q8_0's 32.
fn codes_len(ty: BlockType) -> usize {
    ty.block_bytes() - head(ty).unwrap_or(0)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Writes the interleaved group block `dst` (eight blocks' bytes) from the GGUF blocks
/// `block(r)` of its eight rows.
fn pack<'a>(ty: BlockType, block: impl Fn(usize) -> &'a [u8], dst: &mut [u8]) {
    if let Some(l) = k_layout(ty) {
        return pack_k(ty, &l, block, dst);
    }
    let Some(h) = head(ty) else { return };
    let (codes, len) = (codes_at(ty), codes_len(ty));
    for r in 0..GROUP_ROWS {
        let b = block(r);
        dst[2 * r..2 * r + 2].copy_from_slice(&b[..2]);
        if ty == BlockType::Q4_1 {
            dst[SECOND_AT + 2 * r..SECOND_AT + 2 * r + 2].copy_from_slice(&b[2..4]);
        }
        dst[codes + len * r..codes + len * (r + 1)].copy_from_slice(&b[h..h + len]);
    }
    if ty == BlockType::Q5_0 {
        for half in 0..2 {
            let mut x = [0u64; 2];
            for r in 0..4 {
                // Elements 8c..8c + 8 go to word c % 2, byte e % 8, bit r (4 + r from 16 on).
                let bits = u32_at(block(4 * half + r), 2);
                for c in 0..4 {
                    let byte = (bits >> (8 * c)) as u8;
                    x[c % 2] |= SPREAD[byte as usize] << (r + if c < 2 { 0 } else { 4 });
                }
            }
            let at = SECOND_AT + 16 * half;
            dst[at..at + 8].copy_from_slice(&x[0].to_le_bytes());
            dst[at + 8..at + 16].copy_from_slice(&x[1].to_le_bytes());
        }
    }
}

/// [`pack`] for the k-quants.
fn pack_k<'a>(ty: BlockType, l: &KLayout, block: impl Fn(usize) -> &'a [u8], dst: &mut [u8]) {
    let (mut sc, mut mn) = ([0u8; 64], [0u8; 64]);
    for r in 0..GROUP_ROWS {
        let b = block(r);
        dst[2 * r..2 * r + 2].copy_from_slice(&b[l.d..l.d + 2]);
        if ty == BlockType::Q6_K {
            let at = K6_SCALES_AT + 16 * r;
            dst[at..at + 16].copy_from_slice(&b[192..208]);
        } else {
            dst[K_DMIN_AT + 2 * r..K_DMIN_AT + 2 * r + 2].copy_from_slice(&b[2..4]);
            for j in 0..8 {
                (sc[8 * r + j], mn[8 * r + j]) = super::scalar::k4_scale_min(j, &b[4..16]);
            }
        }
        for o in (0..l.code_len).step_by(32) {
            let at = k_code_pos(ty, r, o);
            dst[at..at + 32].copy_from_slice(&b[l.code_start + o..l.code_start + o + 32]);
        }
    }
    if ty != BlockType::Q6_K {
        for i in 0..64 {
            dst[K_LOW_AT + i] = sc[i] & 0x0f | (mn[i] & 0x0f) << 4;
        }
        for i in 0..32 {
            dst[K_HIGH_AT + i] =
                sc[i] >> 4 | (sc[32 + i] >> 4) << 2 | (mn[i] >> 4) << 4 | (mn[32 + i] >> 4) << 6;
        }
    }
}

/// Writes row `r`'s GGUF block `dst` back from the interleaved group block `src` (each of
/// `block_bytes` bytes, `src` eight times that).
pub fn unpack(ty: BlockType, src: &[u8], r: usize, dst: &mut [u8]) {
    if let Some(l) = k_layout(ty) {
        dst[l.d..l.d + 2].copy_from_slice(&src[2 * r..2 * r + 2]);
        if ty == BlockType::Q6_K {
            let at = K6_SCALES_AT + 16 * r;
            dst[192..208].copy_from_slice(&src[at..at + 16]);
        } else {
            dst[2..4].copy_from_slice(&src[K_DMIN_AT + 2 * r..K_DMIN_AT + 2 * r + 2]);
            // GGUF's packing (see `scalar::k4_scale_min`), inverted.
            let (sc, mn) = k4_scales_mins(src, r);
            let q = &mut dst[4..16];
            for j in 0..4 {
                q[j] = sc[j] | (sc[j + 4] >> 4) << 6;
                q[j + 4] = mn[j] | (mn[j + 4] >> 4) << 6;
                q[j + 8] = sc[j + 4] & 0x0f | (mn[j + 4] & 0x0f) << 4;
            }
        }
        for o in (0..l.code_len).step_by(32) {
            let at = k_code_pos(ty, r, o);
            dst[l.code_start + o..l.code_start + o + 32].copy_from_slice(&src[at..at + 32]);
        }
        return;
    }
    let Some(h) = head(ty) else { return };
    let (codes, len) = (codes_at(ty), codes_len(ty));
    dst[..2].copy_from_slice(&src[2 * r..2 * r + 2]);
    match ty {
        BlockType::Q4_1 => {
            dst[2..4].copy_from_slice(&src[SECOND_AT + 2 * r..SECOND_AT + 2 * r + 2])
        }
        BlockType::Q5_0 => {
            let at = SECOND_AT + 16 * (r / 4);
            let bits = q5_0_bits(u64_at(src, at), u64_at(src, at + 8), r);
            dst[2..6].copy_from_slice(&bits.to_le_bytes());
        }
        _ => {}
    }
    dst[h..h + len].copy_from_slice(&src[codes + len * r..codes + len * (r + 1)]);
}

/// Groups `groups` of eight GGUF rows of `row_bytes` bytes (`data`, whole blocks of a covered
/// type) interleaved into `out` (their bytes only: group `groups.start` at 0), so that threads
/// can each write their own groups. A whole matrix is these for all its whole groups, then its
/// remaining rows copied as they are (`QMatrix::interleaved`).
pub fn interleave_groups(
    ty: BlockType,
    data: &[u8],
    row_bytes: usize,
    groups: std::ops::Range<usize>,
    out: &mut [u8],
) {
    let bs = ty.block_bytes();
    let group_bytes = GROUP_ROWS * row_bytes;
    for (g, out) in groups.zip(out.chunks_exact_mut(group_bytes)) {
        let base = g * group_bytes;
        for (b, dst) in out.chunks_exact_mut(GROUP_ROWS * bs).enumerate() {
            let block = |r: usize| {
                let at = base + r * row_bytes + b * bs;
                &data[at..at + bs]
            };
            pack(ty, block, dst);
        }
    }
}

/// The GGUF bytes of rows `range` of an interleaved matrix of `rows` rows (`data`, as
/// [`interleave_groups`] and the rows after them make it), into `out` (resized to fit).
pub fn standard_rows(
    ty: BlockType,
    data: &[u8],
    rows: usize,
    row_bytes: usize,
    range: std::ops::Range<usize>,
    out: &mut Vec<u8>,
) {
    let bs = ty.block_bytes();
    let (lo, hi) = (range.start.min(rows), range.end.min(rows));
    out.clear();
    out.resize(hi.saturating_sub(lo) * row_bytes, 0);
    let full = rows / GROUP_ROWS * GROUP_ROWS;
    for r in lo..hi {
        let dst = &mut out[(r - lo) * row_bytes..(r - lo + 1) * row_bytes];
        if r >= full || !covers(ty) {
            dst.copy_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
            continue;
        }
        let base = r / GROUP_ROWS * GROUP_ROWS * row_bytes;
        for (b, block) in dst.chunks_exact_mut(bs).enumerate() {
            let at = base + b * GROUP_ROWS * bs;
            unpack(ty, &data[at..at + GROUP_ROWS * bs], r % GROUP_ROWS, block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of made-up block bytes (any bytes are a valid block for this purpose).
    fn rows(ty: BlockType, n: usize, nb: usize) -> Vec<u8> {
        (0..n * nb * ty.block_bytes())
            .map(|i| (i as u32).wrapping_mul(2654435761).rotate_right(13) as u8)
            .collect()
    }

    fn interleaved(ty: BlockType, data: &[u8], rows: usize, row_bytes: usize) -> Vec<u8> {
        let packed = rows / GROUP_ROWS * GROUP_ROWS * row_bytes;
        let mut out = data.to_vec();
        interleave_groups(
            ty,
            data,
            row_bytes,
            0..rows / GROUP_ROWS,
            &mut out[..packed],
        );
        out
    }

    #[test]
    fn rows_come_back_as_they_were_for_every_type_and_a_partial_last_group() {
        for ty in [
            BlockType::Q4_0,
            BlockType::Q4_1,
            BlockType::Q5_0,
            BlockType::Q8_0,
            BlockType::Q4_K,
            BlockType::Q5_K,
            BlockType::Q6_K,
        ] {
            for n in [8, 13, 16, 3] {
                let nb = 5;
                let rb = nb * ty.block_bytes();
                let data = rows(ty, n, nb);
                let x = interleaved(ty, &data, n, rb);
                if n >= 8 {
                    assert_ne!(x[..8 * rb], data[..8 * rb], "{ty:?}: a group was not moved");
                }
                // Rows after the last whole group are left as they are.
                assert_eq!(x[n / 8 * 8 * rb..], data[n / 8 * 8 * rb..], "{ty:?}");
                let mut back = Vec::new();
                standard_rows(ty, &x, n, rb, 0..n, &mut back);
                assert_eq!(back, data, "{ty:?} {n} rows");
                for (lo, hi) in [(1, 2), (5, 11), (7, 8)] {
                    if hi <= n {
                        standard_rows(ty, &x, n, rb, lo..hi, &mut back);
                        assert_eq!(back[..], data[lo * rb..hi * rb], "{ty:?} {lo}..{hi}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_group_block_has_its_fields_where_the_kernels_read_them() {
        let ty = BlockType::Q5_0;
        let (nb, rb) = (2, 2 * 22);
        let data = rows(ty, 8, nb);
        let x = interleaved(ty, &data, 8, rb);
        // Block 1 of the group: 176 bytes after block 0's.
        let g = &x[176..352];
        for r in 0..8 {
            let b = &data[r * rb + 22..r * rb + 44];
            assert_eq!(g[2 * r..2 * r + 2], b[..2], "scale of row {r}");
            assert_eq!(g[48 + 16 * r..64 + 16 * r], b[6..22], "nibbles of row {r}");
            // Fifth bit of element e: word (e / 8) % 2 of the row's half, byte e % 8, bit
            // r % 4 (elements 16-31: bit 4 + r % 4).
            let bits = u32_at(b, 2);
            for e in 0..32 {
                let w = u64_at(g, 16 + 16 * (r / 4) + 8 * ((e / 8) % 2));
                let at = 8 * (e % 8) + r % 4 + if e < 16 { 0 } else { 4 };
                assert_eq!(
                    w >> at & 1,
                    u64::from(bits >> e & 1),
                    "fifth bit {e} of row {r}"
                );
            }
        }
        let ty = BlockType::Q4_1;
        let rb = 2 * 20;
        let data = rows(ty, 8, nb);
        let x = interleaved(ty, &data, 8, rb);
        for r in 0..8 {
            let b = &data[r * rb..r * rb + 20];
            assert_eq!(x[16 + 2 * r..18 + 2 * r], b[2..4], "minimum of row {r}");
            assert_eq!(x[32 + 16 * r..48 + 16 * r], b[4..20], "nibbles of row {r}");
        }
        assert_eq!(x[2..4], data[rb..rb + 2], "scale of row 1");
        let ty = BlockType::Q8_0;
        let rb = 2 * 34;
        let data = rows(ty, 8, nb);
        let x = interleaved(ty, &data, 8, rb);
        for r in 0..8 {
            let b = &data[r * rb + 34..r * rb + 68];
            assert_eq!(x[272 + 2 * r..274 + 2 * r], b[..2], "scale of row {r}");
            assert_eq!(
                x[272 + 16 + 32 * r..272 + 48 + 32 * r],
                b[2..],
                "codes of row {r}"
            );
        }
    }

    #[test]
    fn a_k_quant_group_block_has_its_fields_where_the_kernels_read_them() {
        for ty in [BlockType::Q4_K, BlockType::Q5_K, BlockType::Q6_K] {
            let (bs, nb) = (ty.block_bytes(), 2);
            let rb = nb * bs;
            let data = rows(ty, 8, nb);
            let x = interleaved(ty, &data, 8, rb);
            // Block 1 of the group.
            let g = &x[8 * bs..16 * bs];
            let (start, len) = (
                k_code_start(ty),
                bs - 16 - if ty == BlockType::Q6_K { 2 } else { 0 },
            );
            for r in 0..8 {
                let b = &data[r * rb + bs..(r + 1) * rb];
                let d = if ty == BlockType::Q6_K { 208 } else { 0 };
                assert_eq!(g[2 * r..2 * r + 2], b[d..d + 2], "{ty:?}: d of row {r}");
                if ty == BlockType::Q6_K {
                    let at = K6_SCALES_AT + 16 * r;
                    assert_eq!(g[at..at + 16], b[192..208], "scales of row {r}");
                } else {
                    let at = K_DMIN_AT + 2 * r;
                    assert_eq!(g[at..at + 2], b[2..4], "{ty:?}: dmin of row {r}");
                    let (sc, mn) = k4_scales_mins(g, r);
                    for j in 0..8 {
                        let want = super::super::scalar::k4_scale_min(j, &b[4..16]);
                        assert_eq!((sc[j], mn[j]), want, "{ty:?}: scale and min {j} of row {r}");
                    }
                }
                // Each 32 code bytes beside the pair's other row's.
                let pair = k_pair_at(ty, r / 2);
                for c in 0..len / 32 {
                    let at = pair + 64 * c + 32 * (r % 2);
                    assert_eq!(
                        g[at..at + 32],
                        b[start + 32 * c..start + 32 * c + 32],
                        "{ty:?}: codes {c} of row {r}"
                    );
                }
            }
        }
    }
}
