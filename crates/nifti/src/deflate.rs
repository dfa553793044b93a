//! Deflate (RFC 1951) encoding pieces voxcalc writes itself: the bit writer, and a Huffman-only
//! encoder for data that LZ77 matching cannot shrink.
//!
//! Float results (z-scores, ratios, anything with noisy mantissas) are nearly incompressible:
//! libdeflate's fastest level spends most of its time searching for matches that are not there
//! and ends with a file no smaller than plain entropy coding of the bytes gives (0.958 vs 0.959
//! of the raw size on float64 z-scores). [`huffman_only`] skips the search: a histogram per
//! block, a length-limited Huffman code, and one table lookup per byte, an order of magnitude
//! faster. `gz::gzip_member` picks it per member when a sample says matching would not pay.

/// Writes bits least-significant first, as deflate packs them.
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n_bits: u32,
}

impl BitWriter {
    /// Appends to `out` (keeping what it holds).
    pub fn new(out: Vec<u8>) -> BitWriter {
        BitWriter {
            out,
            acc: 0,
            n_bits: 0,
        }
    }

    /// Appends the low `count` bits of `bits` (`count` <= 32, higher bits of `bits` zero).
    #[inline]
    pub fn put(&mut self, bits: u32, count: u32) {
        debug_assert!(count <= 32 && u64::from(bits) >> count == 0);
        // At most 31 bits wait in `acc` and at most 32 arrive: it never overflows.
        self.acc |= u64::from(bits) << self.n_bits;
        self.n_bits += count;
        if self.n_bits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n_bits -= 32;
        }
    }

    /// Pads with zero bits to a byte boundary (as a stored block's header requires).
    pub fn align_to_byte(&mut self) {
        let pad = (8 - self.n_bits % 8) % 8;
        self.put(0, pad);
        while self.n_bits > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n_bits -= 8;
        }
    }

    /// Appends whole bytes; the writer must be at a byte boundary ([`BitWriter::align_to_byte`]).
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.n_bits, 0);
        self.out.extend_from_slice(bytes);
    }

    /// Appends the code of each byte of `data`: `table[b]` holds the bit-reversed code of byte
    /// `b` in its low 16 bits and its length (at most 15) above. The hot loop of
    /// [`huffman_only`]: three codes per 8-byte store into a preallocated tail. `coded_bits` is
    /// the total length of the codes of `data`.
    fn put_coded(&mut self, data: &[u8], table: &[u32; 256], coded_bits: u64) {
        // Whole bytes out first, so at most 7 bits wait: 7 + 3 * 15 bits fit in 64.
        while self.n_bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n_bits -= 8;
        }
        let start = self.out.len();
        // `coded_bits` (the codes' total) plus the waiting bits and room for the last 8-byte
        // store; a wrong total can only make the slicing below panic, never write out of bounds.
        self.out.resize(start + (coded_bits / 8) as usize + 16, 0);
        let tail = &mut self.out[start..];
        let (mut acc, mut n_bits, mut pos) = (self.acc, self.n_bits, 0usize);
        let mut triples = data.chunks_exact(3);
        for t in &mut triples {
            for &byte in t {
                let entry = table[usize::from(byte)];
                acc |= u64::from(entry & 0xffff) << n_bits;
                n_bits += entry >> 16;
            }
            tail[pos..pos + 8].copy_from_slice(&acc.to_le_bytes());
            let n_bytes = n_bits / 8;
            pos += n_bytes as usize;
            acc >>= n_bytes * 8;
            n_bits -= n_bytes * 8;
        }
        for &byte in triples.remainder() {
            let entry = table[usize::from(byte)];
            acc |= u64::from(entry & 0xffff) << n_bits;
            n_bits += entry >> 16;
        }
        // At most 7 + 2 * 15 bits wait: keep up to 31 in the accumulator, as `put` expects.
        while n_bits >= 32 {
            tail[pos..pos + 4].copy_from_slice(&(acc as u32).to_le_bytes());
            pos += 4;
            acc >>= 32;
            n_bits -= 32;
        }
        self.out.truncate(start + pos);
        self.acc = acc;
        self.n_bits = n_bits;
    }

    /// Reserves room for `n_bytes` more output bytes.
    pub fn reserve(&mut self, n_bytes: usize) {
        self.out.reserve(n_bytes);
    }

    /// The bytes written, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        self.align_to_byte();
        self.out
    }
}

/// Reverses the low `len` bits of `code` (Huffman codes are sent most-significant bit first).
pub const fn reverse_bits(code: u32, len: u32) -> u32 {
    let mut out = 0;
    let mut i = 0;
    while i < len {
        out |= ((code >> i) & 1) << (len - 1 - i);
        i += 1;
    }
    out
}

/// Bytes per Huffman block: small enough for the code to follow changes in the data (brain vs
/// background), large enough that the ~100-byte block header does not matter.
const BLOCK: usize = 256 << 10;
/// Largest payload of one stored block.
const STORED_MAX: usize = 65_535;
/// End-of-block symbol.
const EOB: usize = 256;
/// Order in which the code-length code's lengths are sent (RFC 1951, 3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Appends `data` to `bits` as raw deflate blocks of literals only (the last one final when
/// `last`): each block gets its own Huffman code, or is stored when coding would not shrink it.
pub fn huffman_only(data: &[u8], last: bool, bits: &mut BitWriter) {
    // Bound on the output: Huffman blocks are only chosen when smaller than stored ones.
    bits.reserve(data.len() + data.len().div_ceil(STORED_MAX) * 5 + 64);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        // An empty stream is one empty block.
        bits.put(u32::from(last), 1);
        bits.put(1, 2);
        bits.put(0, 7); // fixed-code end of block
        return;
    }
    while let Some(block) = blocks.next() {
        let is_last = last && blocks.peek().is_none();
        huffman_block(block, is_last, bits);
    }
}

/// Size in bytes of what [`huffman_only`] makes of `data` (the same block decisions, without
/// writing anything).
pub fn huffman_only_len(data: &[u8]) -> usize {
    let bits: u64 = data
        .chunks(BLOCK)
        .map(|block| block_plan(block).1.min(stored_bits(block)))
        .sum();
    bits.max(10).div_ceil(8) as usize
}

/// Bits of `block` as stored blocks (headers padded to a byte each, at worst).
fn stored_bits(block: &[u8]) -> u64 {
    (block.len() as u64 + 5 * block.len().div_ceil(STORED_MAX) as u64) * 8 + 7
}

/// The literal code lengths of `block` (with its end-of-block symbol), its block header, and
/// the bits the coded block takes.
fn block_plan(block: &[u8]) -> ((Vec<u8>, BlockHeader), u64) {
    let mut counts = histogram(block);
    counts[EOB] = 1;
    let lit_lens = code_lengths(&counts, 15);
    let header = BlockHeader::new(&lit_lens);
    let coded_bits: u64 = counts
        .iter()
        .zip(&lit_lens)
        .map(|(&c, &l)| u64::from(c) * u64::from(l))
        .sum::<u64>()
        + header.n_bits();
    ((lit_lens, header), coded_bits)
}

/// Counts of each byte value in `data` (four interleaved tables keep successive increments of one
/// value from waiting on each other).
fn histogram(data: &[u8]) -> [u32; 257] {
    let mut tables = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        tables[0][q[0] as usize] += 1;
        tables[1][q[1] as usize] += 1;
        tables[2][q[2] as usize] += 1;
        tables[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        tables[0][b as usize] += 1;
    }
    let mut counts = [0u32; 257];
    for (v, count) in counts.iter_mut().take(256).enumerate() {
        *count = tables[0][v] + tables[1][v] + tables[2][v] + tables[3][v];
    }
    counts
}

fn huffman_block(block: &[u8], last: bool, bits: &mut BitWriter) {
    let ((lit_lens, header), coded_bits) = block_plan(block);
    if coded_bits >= stored_bits(block) {
        stored_blocks(block, last, bits);
        return;
    }
    bits.put(u32::from(last), 1);
    bits.put(2, 2);
    header.write(bits);
    let codes = canonical_codes(&lit_lens);
    // Code and length packed in one word: one load per byte.
    let mut table = [0u32; 256];
    for (v, entry) in table.iter_mut().enumerate() {
        *entry = codes[v] | u32::from(lit_lens[v]) << 16;
    }
    let data_bits = coded_bits - header.n_bits() - u64::from(lit_lens[EOB]);
    bits.put_coded(block, &table, data_bits);
    bits.put(codes[EOB], u32::from(lit_lens[EOB]));
}

/// `block` as stored blocks (payload copied as is).
fn stored_blocks(block: &[u8], last: bool, bits: &mut BitWriter) {
    let mut parts = block.chunks(STORED_MAX).peekable();
    while let Some(part) = parts.next() {
        let is_last = last && parts.peek().is_none();
        bits.put(u32::from(is_last), 1);
        bits.put(0, 2);
        bits.align_to_byte();
        let len = part.len() as u16;
        bits.put_bytes(&len.to_le_bytes());
        bits.put_bytes(&(!len).to_le_bytes());
        bits.put_bytes(part);
    }
}

/// Huffman code lengths (at most `max_len` bits) for symbols with the given counts; symbols
/// with count 0 get length 0. At least two symbols get a code (a one-symbol code would be
/// incomplete, which some inflaters refuse), so callers with fewer used symbols get a spare one.
fn code_lengths(counts: &[u32], max_len: u8) -> Vec<u8> {
    let mut used: Vec<(u32, usize)> = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(s, &c)| (c, s))
        .collect();
    let mut spare = 0;
    while used.len() < 2 {
        if counts[spare] == 0 {
            used.push((0, spare));
        }
        spare += 1;
    }
    // Ascending by count (ties by symbol, for a deterministic code).
    used.sort_unstable();
    let n = used.len();
    // Huffman's algorithm with two queues over the sorted leaves: node weights, then depths.
    let mut weight: Vec<u64> = used.iter().map(|&(c, _)| u64::from(c)).collect();
    let mut parent = vec![0usize; 2 * n - 1];
    let (mut leaf, mut inner) = (0usize, n);
    weight.reserve(n - 1);
    for next in n..2 * n - 1 {
        let mut pick = |weight: &Vec<u64>| {
            let take_leaf = leaf < n && (inner >= next || weight[leaf] <= weight[inner]);
            if take_leaf {
                leaf += 1;
                leaf - 1
            } else {
                inner += 1;
                inner - 1
            }
        };
        let a = pick(&weight);
        let b = pick(&weight);
        weight.push(weight[a] + weight[b]);
        parent[a] = next;
        parent[b] = next;
    }
    // Depth of each node, from the root (the last node) down.
    let mut depth = vec![0u32; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    // How many leaves at each length, capped at max_len and repaired to satisfy Kraft's
    // inequality exactly (lengths too long are shortened; others lengthened to pay for it).
    let max = usize::from(max_len);
    let mut per_len = vec![0u32; max + 1];
    for &d in &depth[..n] {
        per_len[(d as usize).min(max)] += 1;
    }
    let kraft =
        |per_len: &[u32]| -> u64 { (1..=max).map(|l| u64::from(per_len[l]) << (max - l)).sum() };
    let mut total = kraft(&per_len);
    while total > 1 << max {
        // Move one leaf from the longest length up to a shorter level that can split a leaf.
        per_len[max] -= 1;
        for l in (1..max).rev() {
            if per_len[l] > 0 {
                per_len[l] -= 1;
                per_len[l + 1] += 2;
                break;
            }
        }
        total -= 1;
    }
    // Longest codes to the rarest symbols.
    let mut lens = vec![0u8; counts.len()];
    let mut rarest_first = used.iter().map(|&(_, s)| s);
    for l in (1..=max).rev() {
        for _ in 0..per_len[l] {
            if let Some(s) = rarest_first.next() {
                lens[s] = l as u8;
            }
        }
    }
    lens
}

/// Canonical codes (RFC 1951, 3.2.2) for `lens`, bit-reversed for sending LSB first.
fn canonical_codes(lens: &[u8]) -> Vec<u32> {
    let mut per_len = [0u32; 16];
    for &l in lens {
        per_len[usize::from(l)] += 1;
    }
    per_len[0] = 0;
    let mut next = [0u32; 16];
    let mut code = 0;
    for l in 1..16 {
        code = (code + per_len[l - 1]) << 1;
        next[l] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next[usize::from(l)];
                next[usize::from(l)] += 1;
                reverse_bits(c, u32::from(l))
            }
        })
        .collect()
}

/// A dynamic block's header for a literal-only code: HLIT, HDIST, HCLEN, the code-length code,
/// and the run-length-coded code lengths (with two one-bit distance codes, complete as every
/// inflater accepts, though none is used).
struct BlockHeader {
    n_lit: usize,
    n_clen: usize,
    cl_lens: Vec<u8>,
    cl_codes: Vec<u32>,
    /// (symbol 0-18, extra bits value, extra bit count).
    runs: Vec<(u8, u8, u8)>,
}

impl BlockHeader {
    fn new(lit_lens: &[u8]) -> BlockHeader {
        let n_lit = 257; // all literals and end-of-block; no length symbols used
        let mut all: Vec<u8> = lit_lens[..n_lit].to_vec();
        all.extend_from_slice(&[1, 1]);
        let runs = run_length_code(&all);
        let mut cl_counts = [0u32; 19];
        for &(sym, _, _) in &runs {
            cl_counts[usize::from(sym)] += 1;
        }
        let cl_lens = code_lengths(&cl_counts, 7);
        let cl_codes = canonical_codes(&cl_lens);
        let n_clen = (4..=19)
            .rev()
            .find(|&n| cl_lens[CL_ORDER[n - 1]] != 0)
            .unwrap_or(4);
        BlockHeader {
            n_lit,
            n_clen,
            cl_lens,
            cl_codes,
            runs,
        }
    }

    fn n_bits(&self) -> u64 {
        let runs: u64 = self
            .runs
            .iter()
            .map(|&(sym, _, extra)| u64::from(self.cl_lens[usize::from(sym)]) + u64::from(extra))
            .sum();
        3 + 5 + 5 + 4 + 3 * self.n_clen as u64 + runs
    }

    fn write(&self, bits: &mut BitWriter) {
        bits.put((self.n_lit - 257) as u32, 5);
        bits.put(1, 5); // two distance codes
        bits.put((self.n_clen - 4) as u32, 4);
        for &sym in &CL_ORDER[..self.n_clen] {
            bits.put(u32::from(self.cl_lens[sym]), 3);
        }
        for &(sym, value, extra) in &self.runs {
            let s = usize::from(sym);
            bits.put(self.cl_codes[s], u32::from(self.cl_lens[s]));
            bits.put(u32::from(value), u32::from(extra));
        }
    }
}

/// Code lengths as code-length symbols: 0-15 literal lengths, 16 repeats the previous length
/// 3-6 times, 17 and 18 give 3-10 and 11-138 zeros.
fn run_length_code(lens: &[u8]) -> Vec<(u8, u8, u8)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let len = lens[i];
        let run = lens[i..].iter().take_while(|&&l| l == len).count();
        if len == 0 && run >= 3 {
            let take = run.min(138);
            if take >= 11 {
                out.push((18, (take - 11) as u8, 7));
            } else {
                out.push((17, (take - 3) as u8, 3));
            }
            i += take;
        } else if len != 0 && run >= 4 {
            out.push((len, 0, 0));
            let take = (run - 1).min(6);
            out.push((16, (take - 3) as u8, 2));
            i += 1 + take;
        } else {
            out.push((len, 0, 0));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inflate(deflate: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut inflater = flate2::Decompress::new(false);
        out.reserve(deflate.len() * 2 + 1024);
        loop {
            let status = inflater
                .decompress_vec(
                    &deflate[inflater.total_in() as usize..],
                    &mut out,
                    flate2::FlushDecompress::Finish,
                )
                .expect("valid deflate data");
            if status == flate2::Status::StreamEnd {
                return out;
            }
            out.reserve(out.capacity().max(1024));
        }
    }

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut bits = BitWriter::new(Vec::new());
        huffman_only(data, true, &mut bits);
        bits.finish()
    }

    /// Kraft's sum of `lens` scaled to 2^15: exactly 2^15 for a complete code.
    fn kraft(lens: &[u8]) -> u64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (15 - l))
            .sum()
    }

    #[test]
    fn round_trips_typical_data() {
        let noisy: Vec<u8> = (0..700_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as u8)
            .collect();
        let skewed: Vec<u8> = (0..300_000u32)
            .map(|i| if i % 7 == 0 { (i % 251) as u8 } else { 0 })
            .collect();
        for data in [&noisy[..], &skewed[..], b"a", b"", &[7u8; 100_000][..]] {
            let back = inflate(&encode(data));
            let first_diff = back.iter().zip(data).position(|(a, b)| a != b);
            assert_eq!(
                (back.len(), first_diff),
                (data.len(), None),
                "{} bytes",
                data.len()
            );
        }
        // Skewed data shrink; uniform noise is stored at almost its size.
        let n = encode(&skewed).len();
        assert!(n < skewed.len() / 2, "{n}");
        assert!(encode(&noisy).len() <= noisy.len() + noisy.len() / 1000 + 64);
    }

    #[test]
    fn libdeflate_reads_it() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| ((i as f64).sin() * 1000.0).to_le_bytes())
            .collect();
        let deflate = encode(&data);
        assert!(deflate.len() < data.len());
        let mut out = vec![0u8; data.len()];
        let n = libdeflater::Decompressor::new()
            .deflate_decompress(&deflate, &mut out)
            .expect("libdeflate accepts the stream");
        assert_eq!((n, out), (data.len(), data));
    }

    #[test]
    fn lengths_are_limited_and_complete() {
        // Fibonacci counts make the unlimited Huffman code as deep as there are symbols.
        let mut counts = vec![0u32; 257];
        let (mut a, mut b) = (1u32, 1u32);
        for c in counts.iter_mut().take(30) {
            *c = a;
            (a, b) = (b, a.saturating_add(b));
        }
        let lens = code_lengths(&counts, 15);
        assert!(lens.iter().all(|&l| l <= 15));
        assert_eq!(kraft(&lens), 1 << 15);
        let cl = code_lengths(&counts[..19], 7);
        assert!(cl.iter().all(|&l| l <= 7));
        assert_eq!(kraft(&cl), 1 << 15);
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                runs in proptest::collection::vec((any::<u8>(), 0usize..600), 0..8)) {
            let mut data = data;
            for (value, len) in runs {
                data.extend(std::iter::repeat_n(value, len));
            }
            prop_assert_eq!(inflate(&encode(&data)), data);
        }

        #[test]
        fn codes_are_complete(counts in proptest::collection::vec(0u32..100_000, 2..300)) {
            let lens = code_lengths(&counts, 15);
            prop_assert!(lens.iter().all(|&l| l <= 15));
            prop_assert_eq!(kraft(&lens), 1 << 15);
            let n_used = counts.iter().filter(|&&c| c > 0).count();
            for (c, l) in counts.iter().zip(&lens) {
                if *c > 0 {
                    prop_assert!(*l > 0);
                } else if n_used >= 2 {
                    prop_assert_eq!(*l, 0);
                }
            }
        }
    }
}
