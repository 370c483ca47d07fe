//! The interleaved layout of Q4_0, Q4_1, Q5_0 and Q8_0 matrices: the one the AVX-512
//! single-token kernels read (see `x86::dot_rows_x8`), made once when a model loads.
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
//! | Q5_0 `16..48` | the fifth bits as four u64 byte masks: for the rows `4h..4h + 4` (`h` = 0, 1), at `16 + 16h` the low 16 fifth bits of each (row `4h + i` at bit `16i`), at `24 + 16h` their high 16 |
//! | `16..144` / `32..160` / `48..176` | the eight rows' 16 bytes of nibbles, row `r` at `16r` |
//! | Q8_0 `16..272` | the eight rows' 32 codes, row `r` at `32r` |
//!
//! so that a group's block is a few plain loads. A group takes the same bytes as its
//! eight GGUF rows and the same place (rows `8g..8g + 8` are the bytes `8g · row_bytes ..`);
//! rows after the last whole group keep the GGUF layout. Every other reader (prompts, other
//! instruction sets, a row's values) asks for GGUF rows back through [`standard_rows`].

use super::BlockType;

/// Rows in a group.
pub const GROUP_ROWS: usize = 8;

/// Whether matrices of this type can be interleaved.
pub fn covers(ty: BlockType) -> bool {
    head(ty).is_some()
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

/// Q5_0 row `i`'s 32 fifth bits (as its GGUF block holds them) from the two mask words of its
/// half of the group (`low` at `SECOND_AT + 16 · (i / 4)`, `high` 8 bytes after it).
pub fn q5_0_bits(low: u64, high: u64, i: usize) -> u32 {
    let at = 16 * (i % 4);
    ((low >> at) & 0xffff | ((high >> at) & 0xffff) << 16) as u32
}

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
            let (mut low, mut high) = (0u64, 0u64);
            for i in 0..4 {
                let bits = u32_at(block(4 * half + i), 2) as u64;
                low |= (bits & 0xffff) << (16 * i);
                high |= (bits >> 16) << (16 * i);
            }
            let at = SECOND_AT + 16 * half;
            dst[at..at + 8].copy_from_slice(&low.to_le_bytes());
            dst[at + 8..at + 16].copy_from_slice(&high.to_le_bytes());
        }
    }
}

/// Writes row `r`'s GGUF block `dst` back from the interleaved group block `src`.
fn unpack(ty: BlockType, src: &[u8], r: usize, dst: &mut [u8]) {
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

/// `rows` GGUF rows of `row_bytes` bytes (`data`) interleaved into `out` (as long as `data`).
/// Unless `data` holds whole rows of a covered type, `out` gets a plain copy.
pub fn interleave(ty: BlockType, data: &[u8], rows: usize, row_bytes: usize, out: &mut [u8]) {
    let bs = ty.block_bytes();
    if head(ty).is_none() || !row_bytes.is_multiple_of(bs) || data.len() < rows * row_bytes {
        out.copy_from_slice(data);
        return;
    }
    // The rows after the last whole group, as they are; the groups are written below.
    let packed = rows / GROUP_ROWS * GROUP_ROWS * row_bytes;
    out[packed..].copy_from_slice(&data[packed..]);
    let nb = row_bytes / bs;
    for g in 0..rows / GROUP_ROWS {
        let base = g * GROUP_ROWS * row_bytes;
        for b in 0..nb {
            let block = |r: usize| {
                let at = base + r * row_bytes + b * bs;
                &data[at..at + bs]
            };
            let at = base + b * GROUP_ROWS * bs;
            pack(ty, block, &mut out[at..at + GROUP_ROWS * bs]);
        }
    }
}

/// The GGUF bytes of rows `range` of an interleaved matrix of `rows` rows (`data`, as
/// [`interleave`] made it), into `out` (resized to fit).
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
        if r >= full || head(ty).is_none() {
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
        let mut out = vec![0; data.len()];
        interleave(ty, data, rows, row_bytes, &mut out);
        out
    }

    #[test]
    fn rows_come_back_as_they_were_for_every_type_and_a_partial_last_group() {
        for ty in [
            BlockType::Q4_0,
            BlockType::Q4_1,
            BlockType::Q5_0,
            BlockType::Q8_0,
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
            let bits = u32_at(b, 2) as u64;
            let (half, i) = (r / 4, r % 4);
            assert_eq!(
                (u64_at(g, 16 + 16 * half) >> (16 * i)) & 0xffff,
                bits & 0xffff
            );
            assert_eq!((u64_at(g, 24 + 16 * half) >> (16 * i)) & 0xffff, bits >> 16);
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
}
