//! Inflating one deflate stream on two cores.
//!
//! A single-member gzip file (what nibabel writes) is one deflate stream, which has no index:
//! block boundaries are only known by decoding. The stream is split at a dynamic Huffman block
//! found by searching from 64% of its bits (as pugz and rapidgzip do: a plausible block header
//! whose three prefix codes are complete, then two blocks decoded without error):
//!
//! * the tail, `[split, end)`, is inflated by this module's own decoder (safe Rust,
//!   table-driven, about 0.6x libdeflate's speed). The 32 KiB window before the split is
//!   unknown then, so the decoder first writes 16-bit symbols in which `256 + k` stands for
//!   byte `k` of that window; once the last 32 KiB of output hold no such marker (after a few
//!   MB on fMRI data) it switches to plain bytes, written straight into the output buffer past
//!   where the head will end, then into a chunk when that region is full;
//! * meanwhile libdeflate inflates the stream from its start into a prefix of the output a
//!   little longer (2% + 1 MiB) than the head's estimated length, and stops when that is full.
//!   Running on past the split costs the slack only, and needs no copy of the input (ending
//!   the head with an artificial final block would need one: ~110 MB for a 187 MB file).
//!
//! Then the tail's length gives the head's; the head's bytes past the split must equal the
//! tail's first MiB (a check independent of the CRC), the tail's bytes move down to their
//! place and the markers are resolved from the head's last 32 KiB. Every inconsistency (no
//! block found, a decoding error, a head shorter than estimated, a mismatch) gives `None` and
//! the caller inflates serially; the caller also checks the CRC of the result.
//!
//! The split costs about 1.3x the CPU time of one libdeflate call (this decoder is slower, and
//! there are the slack, the move and the markers), so it pays only when the second core is
//! free: on the shared 2-core machine (2026-12-02, under load from other builds) the reader's
//! inflate + CRC of the 361 MB nibabel-written `bold.nii.gz` took 0.67-0.77 s split against
//! 1.0-1.1 s serial when both cores were available, but 1.3-1.6 s split against 1.1-1.2 s
//! serial when another process held one core. `PINFLATE_PROBE=file.gz cargo test --release
//! -p voxcalc-nifti --lib probe -- --nocapture` times both alternately.

use libdeflater::Decompressor;
use rayon::prelude::*;

/// The deflate window: the farthest a back-reference reaches.
const WINDOW: usize = 32 * 1024;
/// Elements per output chunk of the tail (each also starts with a copy of the window).
const CHUNK_BYTES: usize = 32 << 20;
/// Elements per output chunk while markers are still in the window (16-bit symbols).
const CHUNK_SYMBOLS: usize = 4 << 20;
/// Most 16-bit symbols decoded before the window must be free of markers (past it the split
/// is given up rather than spending twice the memory on a long tail).
const MAX_MARKED: usize = 64 << 20;
/// Free space the decoder keeps at the end of a chunk: the longest match plus the overshoot of
/// the 16-byte match copy.
const MARGIN: usize = 258 + 16;
/// The split is searched for from this fraction of the stream's bits (the head, inflated by
/// libdeflate, is faster than the tail's decoder, so it gets more).
const SPLIT_AT: f64 = 0.64;
/// How far past the target the split search goes before giving up.
const SEARCH_BITS: usize = 2 << 20 << 3;
/// Blocks the tail must decode from a candidate split for it to count as a block boundary.
const TRIAL_BLOCKS: usize = 2;

/// Any decoding failure (the details are left to the serial path, which reports them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bad;

type Res<T> = Result<T, Bad>;

// ---------------------------------------------------------------------------------------------
// Bit input

/// A little-endian bit reader with a 64-bit buffer refilled a word at a time. Past the end of
/// the input it reads zero bits; [`Bits::overrun`] tells whether any were consumed.
struct Bits<'a> {
    input: &'a [u8],
    /// Next input byte to load into `buf`.
    pos: usize,
    /// Bits not yet consumed, the next one lowest. Bits above `count` are either zero or the
    /// stream's own next bits (refilling may load them twice, which is harmless).
    buf: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    /// A reader positioned at bit `bit` of `input` (which must lie within it).
    fn at(input: &'a [u8], bit: usize) -> Bits<'a> {
        let mut bits = Bits {
            input,
            pos: bit / 8,
            buf: 0,
            count: 0,
        };
        bits.refill();
        bits.consume((bit % 8) as u32);
        bits
    }

    /// Loads bytes until at least 56 bits are buffered.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.input.get(self.pos..self.pos + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            self.buf |= word << self.count;
            self.pos += (63 - self.count as usize) >> 3;
            self.count |= 56;
        } else {
            while self.count <= 56 {
                let byte = self.input.get(self.pos).copied().unwrap_or(0);
                self.buf |= u64::from(byte) << self.count;
                self.pos += 1;
                self.count += 8;
            }
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf >>= n;
        self.count -= n;
    }

    /// Takes `n` (at most 32, at most the buffered count) bits as a number.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        let value = (self.buf & ((1u64 << n) - 1)) as u32;
        self.consume(n);
        value
    }

    /// Position of the next unconsumed bit.
    fn bit_pos(&self) -> usize {
        self.pos * 8 - self.count as usize
    }

    /// Whether bits past the end of the input were consumed.
    fn overrun(&self) -> bool {
        self.bit_pos() > self.input.len() * 8
    }

    /// Skips to the next byte boundary and empties the buffer, so that `pos` is the next byte.
    fn align(&mut self) {
        let byte = self.bit_pos().div_ceil(8);
        self.pos = byte;
        self.buf = 0;
        self.count = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Huffman tables

/// Table entry layout: bits 0-4 the code length to consume at this level (so that shifting
/// the bit buffer by a whole entry, which masks the shift to 6 bits, consumes it), bits 8-11
/// the extra-bit count (or a subtable's index bits), bits 12-14 the kind, bits 16-31 the value
/// (literal, length or distance base, or subtable offset).
const KIND: u32 = 7 << 12;
const K_LIT: u32 = 0;
const K_LEN: u32 = 1 << 12;
const K_EOB: u32 = 2 << 12;
const K_SUB: u32 = 3 << 12;
const K_BAD: u32 = 4 << 12;

const fn entry(kind: u32, value: u32, extra: u32) -> u32 {
    (value << 16) | (extra << 8) | kind
}

const LIT_BITS: u32 = 11;
const LIT_MASK: usize = (1 << LIT_BITS) - 1;
/// 2048 primary entries plus subtables (2342 suffice for any complete code, as in libdeflate).
const LIT_SIZE: usize = 4096;
const DIST_BITS: u32 = 8;
const DIST_MASK: usize = (1 << DIST_BITS) - 1;
const DIST_SIZE: usize = 1024;
const CLEN_BITS: u32 = 7;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order in which the code-length code's lengths are stored.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn lit_entry(symbol: usize) -> u32 {
    match symbol {
        0..=255 => entry(K_LIT, symbol as u32, 0),
        256 => entry(K_EOB, 0, 0),
        257..=285 => entry(
            K_LEN,
            u32::from(LEN_BASE[symbol - 257]),
            u32::from(LEN_EXTRA[symbol - 257]),
        ),
        _ => entry(K_BAD, 0, 0),
    }
}

fn dist_entry(symbol: usize) -> u32 {
    match symbol {
        0..=29 => entry(
            K_LEN,
            u32::from(DIST_BASE[symbol]),
            u32::from(DIST_EXTRA[symbol]),
        ),
        _ => entry(K_BAD, 0, 0),
    }
}

fn clen_entry(symbol: usize) -> u32 {
    entry(K_LIT, symbol as u32, 0)
}

/// Whether a prefix code's lengths were complete (every bit string decodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    Complete,
    /// Incomplete but allowed (at most one code; zlib and libdeflate accept it).
    Sparse,
}

/// Fills `table` (primary part of `1 << bits` entries, then subtables) for the canonical prefix
/// code with `lengths`; unused entries decode as errors. Over-subscribed codes and incomplete
/// codes with more than one symbol are refused, as zlib does.
fn build(table: &mut [u32], bits: u32, lengths: &[u8], entry_of: fn(usize) -> u32) -> Res<Fill> {
    let mut count = [0u16; 16];
    for &len in lengths {
        count[usize::from(len)] += 1;
    }
    count[0] = 0;
    let mut left: i32 = 1;
    for &n in &count[1..] {
        left = (left << 1) - i32::from(n);
        if left < 0 {
            return Err(Bad);
        }
    }
    let used: u16 = count.iter().sum();
    let fill = if left == 0 {
        Fill::Complete
    } else if used <= 1 {
        Fill::Sparse
    } else {
        return Err(Bad);
    };
    let mut next = [0u32; 16];
    let mut code = 0u32;
    for len in 1..16 {
        code = (code + u32::from(count[len - 1])) << 1;
        next[len] = code;
    }
    let primary = 1usize << bits;
    table[..primary].fill(entry(K_BAD, 0, 0));
    // Longest code under each primary prefix, for sizing its subtable.
    let mut sub_len = [0u8; 1 << LIT_BITS];
    let mut codes = [0u16; 320];
    for (symbol, &len) in lengths.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let len32 = u32::from(len);
        let reversed = (next[usize::from(len)] as u16).reverse_bits() >> (16 - len32);
        next[usize::from(len)] += 1;
        codes[symbol] = reversed;
        if len32 <= bits {
            let e = entry_of(symbol) | len32;
            let mut i = usize::from(reversed);
            while i < primary {
                table[i] = e;
                i += 1 << len32;
            }
        } else {
            let prefix = usize::from(reversed) & (primary - 1);
            sub_len[prefix] = sub_len[prefix].max(len - bits as u8);
        }
    }
    let mut offset = primary;
    let mut sub_offset = [0u32; 1 << LIT_BITS];
    for prefix in 0..primary {
        let sub_bits = u32::from(sub_len[prefix]);
        if sub_bits == 0 {
            continue;
        }
        let size = 1usize << sub_bits;
        let sub = table.get_mut(offset..offset + size).ok_or(Bad)?;
        sub.fill(entry(K_BAD, 0, 0));
        table[prefix] = entry(K_SUB, offset as u32, sub_bits) | bits;
        sub_offset[prefix] = offset as u32;
        offset += size;
    }
    for (symbol, &len) in lengths.iter().enumerate() {
        let len32 = u32::from(len);
        if len32 <= bits {
            continue;
        }
        let reversed = usize::from(codes[symbol]);
        let prefix = reversed & (primary - 1);
        let sub_bits = u32::from(sub_len[prefix]);
        let start = sub_offset[prefix] as usize;
        let e = entry_of(symbol) | (len32 - bits);
        let mut i = reversed >> bits;
        while i < 1 << sub_bits {
            table[start + i] = e;
            i += 1 << (len32 - bits);
        }
    }
    Ok(fill)
}

/// The literal/length and distance tables of one block.
struct Tables {
    lit: Box<[u32; LIT_SIZE]>,
    dist: Box<[u32; DIST_SIZE]>,
}

impl Tables {
    fn new() -> Tables {
        Tables {
            lit: Box::new([entry(K_BAD, 0, 0); LIT_SIZE]),
            dist: Box::new([entry(K_BAD, 0, 0); DIST_SIZE]),
        }
    }

    fn fixed() -> Tables {
        let mut tables = Tables::new();
        let mut lengths = [8u8; 288];
        lengths[144..256].fill(9);
        lengths[256..280].fill(7);
        // Cannot fail: the fixed code is complete.
        let _ = build(&mut tables.lit[..], LIT_BITS, &lengths, lit_entry);
        let _ = build(&mut tables.dist[..], DIST_BITS, &[5u8; 32], dist_entry);
        tables
    }

    /// Reads a dynamic block's code lengths and builds its tables. Returns whether each of the
    /// three codes was complete (a real encoder's always are; the split search relies on it).
    fn read_dynamic(&mut self, bits: &mut Bits) -> Res<bool> {
        bits.refill();
        let n_lit = bits.take(5) as usize + 257;
        let n_dist = bits.take(5) as usize + 1;
        let n_clen = bits.take(4) as usize + 4;
        if n_lit > 286 || n_dist > 30 {
            return Err(Bad);
        }
        let mut clen_lengths = [0u8; 19];
        for &symbol in &CLEN_ORDER[..n_clen] {
            if bits.count < 3 {
                bits.refill();
            }
            clen_lengths[symbol] = bits.take(3) as u8;
        }
        let mut clen = [entry(K_BAD, 0, 0); 1 << CLEN_BITS];
        let mut complete =
            build(&mut clen, CLEN_BITS, &clen_lengths, clen_entry)? == Fill::Complete;
        let mut lengths = [0u8; 286 + 30];
        let n = n_lit + n_dist;
        let mut i = 0;
        while i < n {
            if bits.count < 16 {
                bits.refill();
            }
            let e = clen[(bits.buf as usize) & ((1 << CLEN_BITS) - 1)];
            if e & KIND != K_LIT {
                return Err(Bad);
            }
            bits.consume(e & 31);
            let symbol = (e >> 16) as u8;
            let (value, repeat) = match symbol {
                0..=15 => (symbol, 1),
                16 => {
                    let previous = *lengths[..i].last().ok_or(Bad)?;
                    (previous, 3 + bits.take(2) as usize)
                }
                17 => (0, 3 + bits.take(3) as usize),
                _ => (0, 11 + bits.take(7) as usize),
            };
            lengths.get_mut(i..i + repeat).ok_or(Bad)?.fill(value);
            i += repeat;
        }
        if lengths[256] == 0 {
            return Err(Bad);
        }
        complete &=
            build(&mut self.lit[..], LIT_BITS, &lengths[..n_lit], lit_entry)? == Fill::Complete;
        complete &= build(
            &mut self.dist[..],
            DIST_BITS,
            &lengths[n_lit..n],
            dist_entry,
        )? == Fill::Complete;
        Ok(complete)
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// An output symbol: a byte, or (16-bit) a byte or a marker for a byte of the unknown window.
trait Symbol: Copy + Default + Send {
    fn literal(byte: u8) -> Self;
}

impl Symbol for u8 {
    #[inline(always)]
    fn literal(byte: u8) -> u8 {
        byte
    }
}

impl Symbol for u16 {
    #[inline(always)]
    fn literal(byte: u8) -> u16 {
        u16::from(byte)
    }
}

/// A chunk of output whose first [`WINDOW`] symbols repeat the end of the previous chunk (or,
/// in the first chunk, are the markers of the unknown window); the output proper follows.
struct Chunk<T> {
    buf: Vec<T>,
}

impl<T> Chunk<T> {
    fn data(&self) -> &[T] {
        &self.buf[WINDOW..]
    }
}

/// Where output is being written: a region of the caller's buffer, or a chunk of our own.
enum Buf<'a, T> {
    Borrowed(&'a mut [T]),
    Owned(Vec<T>),
}

impl<T> Buf<'_, T> {
    fn slice(&self) -> &[T] {
        match self {
            Buf::Borrowed(region) => region,
            Buf::Owned(chunk) => chunk,
        }
    }

    fn slice_mut(&mut self) -> &mut [T] {
        match self {
            Buf::Borrowed(region) => region,
            Buf::Owned(chunk) => chunk,
        }
    }
}

/// Output being written: optionally a borrowed region first, then full chunks, then the
/// current buffer, filled up to `pos`. Every buffer starts with [`WINDOW`] symbols of history.
struct Out<'a, T> {
    /// Symbols written into the borrowed region (once it is full or finished).
    direct: usize,
    done: Vec<Chunk<T>>,
    buf: Buf<'a, T>,
    pos: usize,
    chunk_len: usize,
    /// Symbols produced so far before the current buffer.
    produced: usize,
    /// Most output symbols allowed (beyond which the stream cannot be the expected one).
    limit: usize,
}

impl<'a, T: Symbol> Out<'a, T> {
    /// Output in chunks whose history is `window` (exactly [`WINDOW`] symbols).
    fn new(window: &[T], chunk_len: usize, limit: usize) -> Out<'a, T> {
        let mut buf = vec![T::default(); chunk_len.max(2 * WINDOW + MARGIN)];
        buf[..WINDOW].copy_from_slice(window);
        Out {
            direct: 0,
            done: Vec::new(),
            buf: Buf::Owned(buf),
            pos: WINDOW,
            chunk_len,
            produced: 0,
            limit,
        }
    }

    /// Output into `region` (whose first [`WINDOW`] symbols are the history) and then, when
    /// that is full, in chunks.
    fn in_region(region: &'a mut [T], chunk_len: usize, limit: usize) -> Out<'a, T> {
        Out {
            direct: 0,
            done: Vec::new(),
            buf: Buf::Borrowed(region),
            pos: WINDOW,
            chunk_len,
            produced: 0,
            limit,
        }
    }

    /// Output symbols so far.
    fn len(&self) -> usize {
        self.produced + self.pos - WINDOW
    }

    /// The last [`WINDOW`] symbols.
    fn window(&self) -> &[T] {
        &self.buf.slice()[self.pos - WINDOW..self.pos]
    }

    /// Sets the current buffer aside as full.
    fn retire(&mut self, next: Buf<'a, T>) {
        let n = self.pos - WINDOW;
        match std::mem::replace(&mut self.buf, next) {
            Buf::Borrowed(_) => self.direct = n,
            Buf::Owned(mut full) => {
                full.truncate(self.pos);
                self.done.push(Chunk { buf: full });
            }
        }
        self.produced += n;
        self.pos = WINDOW;
    }

    /// Starts a new chunk (keeping the window) once fewer than [`MARGIN`] symbols are free.
    #[cold]
    fn room(&mut self) -> Res<()> {
        if self.pos + MARGIN <= self.buf.slice().len() {
            return Ok(());
        }
        if self.len() > self.limit {
            return Err(Bad);
        }
        let mut buf = vec![T::default(); self.chunk_len.max(2 * WINDOW + MARGIN)];
        buf[..WINDOW].copy_from_slice(self.window());
        self.retire(Buf::Owned(buf));
        Ok(())
    }

    /// The number of symbols in the borrowed region and the chunks, the current one included.
    fn finish(mut self) -> Res<(usize, Vec<Chunk<T>>)> {
        if self.len() > self.limit {
            return Err(Bad);
        }
        self.retire(Buf::Owned(Vec::new()));
        Ok((self.direct, self.done))
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one block's Huffman-coded symbols up to its end-of-block code. The bit reader's
/// state lives in locals here (the hot loop).
#[inline(always)]
fn huffman<T: Symbol>(
    bits: &mut Bits,
    lit: &[u32; LIT_SIZE],
    dist: &[u32; DIST_SIZE],
    out: &mut Out<'_, T>,
) -> Res<()> {
    let input = bits.input;
    let mut in_pos = bits.pos;
    let mut bit_buf = bits.buf;
    let mut count = bits.count;
    let mut pos = out.pos;
    let result = 'outer: loop {
        out.pos = pos;
        if let Err(e) = out.room() {
            break Err(e);
        }
        if in_pos > input.len() + 8 {
            break Err(Bad);
        }
        pos = out.pos;
        let buf = out.buf.slice_mut();
        let out_end = buf.len() - MARGIN;
        // Refills to at least 48 bits (enough for a length, a distance and their extra bits).
        // Only the low 8 bits of `count` are meaningful here (see `consume`).
        macro_rules! refill {
            () => {
                if let Some(word) = input.get(in_pos..in_pos + 8) {
                    let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
                    let valid = count as u8;
                    bit_buf |= word << valid;
                    in_pos += usize::from(63 - valid) >> 3;
                    count = u32::from(valid | 56);
                } else {
                    count &= 0xff;
                    while count <= 56 {
                        let byte = input.get(in_pos).copied().unwrap_or(0);
                        bit_buf |= u64::from(byte) << count;
                        in_pos += 1;
                        count += 8;
                    }
                }
            };
        }
        // Consumes the code length in the low bits of an entry: the shift masks it to 6 bits,
        // and subtracting the whole entry leaves the low 8 bits of `count` right (there are
        // always enough bits, so nothing borrows from them).
        macro_rules! consume {
            ($n:expr) => {
                let n = $n;
                bit_buf = bit_buf.wrapping_shr(n);
                count = count.wrapping_sub(n);
            };
        }
        refill!();
        // The entry for the next symbol, looked up ahead (at least 33 bits are valid whenever
        // it is looked up, more than a primary index needs).
        let mut e = lit[(bit_buf as usize) & LIT_MASK];
        while pos <= out_end {
            if (count as u8) < 48 {
                refill!();
            }
            if e & KIND == K_LIT {
                consume!(e);
                buf[pos] = T::literal((e >> 16) as u8);
                pos += 1;
                e = lit[(bit_buf as usize) & LIT_MASK];
                if e & KIND == K_LIT {
                    consume!(e);
                    buf[pos] = T::literal((e >> 16) as u8);
                    pos += 1;
                    e = lit[(bit_buf as usize) & LIT_MASK];
                }
                continue;
            }
            if e & KIND == K_SUB {
                consume!(LIT_BITS);
                let sub_bits = (e >> 8) & 15;
                let index = (e >> 16) as usize + (bit_buf as usize & ((1 << sub_bits) - 1));
                e = lit[index & (LIT_SIZE - 1)];
                if e & KIND == K_LIT {
                    consume!(e);
                    buf[pos] = T::literal((e >> 16) as u8);
                    pos += 1;
                    e = lit[(bit_buf as usize) & LIT_MASK];
                    continue;
                }
            }
            if e & KIND != K_LEN {
                consume!(e);
                break 'outer if e & KIND == K_EOB { Ok(()) } else { Err(Bad) };
            }
            consume!(e);
            let extra = (e >> 8) & 15;
            let len = (e >> 16) as usize + (bit_buf & ((1 << extra) - 1)) as usize;
            consume!(extra);
            let mut d = dist[(bit_buf as usize) & DIST_MASK];
            if d & KIND == K_SUB {
                consume!(DIST_BITS);
                let sub_bits = (d >> 8) & 15;
                let index = (d >> 16) as usize + (bit_buf as usize & ((1 << sub_bits) - 1));
                d = dist[index & (DIST_SIZE - 1)];
            }
            if d & KIND != K_LEN {
                break 'outer Err(Bad);
            }
            consume!(d);
            let extra = (d >> 8) & 15;
            let distance = (d >> 16) as usize + (bit_buf & ((1 << extra) - 1)) as usize;
            consume!(extra);
            refill!();
            e = lit[(bit_buf as usize) & LIT_MASK];
            // `pos >= WINDOW >= distance` always: each chunk starts with a full window.
            copy_match(buf, pos, distance, len);
            pos += len;
        }
    };
    out.pos = pos;
    bits.pos = in_pos;
    bits.buf = bit_buf;
    bits.count = count & 0xff;
    result
}

/// Copies `len` symbols from `dist` back to `pos` (overlapping as deflate means it); may
/// write up to 16 symbols past `pos + len` (the caller keeps [`MARGIN`] free).
#[inline(always)]
fn copy_match<T: Copy + Default>(buf: &mut [T], pos: usize, dist: usize, len: usize) {
    let mut src = pos - dist;
    let end = pos + len;
    let mut dst = pos;
    if dist >= 16 {
        while dst < end {
            let word: [T; 16] = buf[src..src + 16].try_into().unwrap_or([T::default(); 16]);
            buf[dst..dst + 16].copy_from_slice(&word);
            src += 16;
            dst += 16;
        }
    } else if dist >= 8 {
        while dst < end {
            let word: [T; 8] = buf[src..src + 8].try_into().unwrap_or([T::default(); 8]);
            buf[dst..dst + 8].copy_from_slice(&word);
            src += 8;
            dst += 8;
        }
    } else if dist == 1 {
        let value = buf[src];
        buf[dst..end].fill(value);
    } else {
        while dst < end {
            buf[dst] = buf[src];
            src += 1;
            dst += 1;
        }
    }
}

/// Copies a stored block's bytes.
fn stored<T: Symbol>(bits: &mut Bits, out: &mut Out<'_, T>) -> Res<()> {
    bits.align();
    let header = bits.input.get(bits.pos..bits.pos + 4).ok_or(Bad)?;
    let len = u16::from_le_bytes([header[0], header[1]]);
    if len != !u16::from_le_bytes([header[2], header[3]]) {
        return Err(Bad);
    }
    let start = bits.pos + 4;
    let mut bytes = bits.input.get(start..start + usize::from(len)).ok_or(Bad)?;
    while !bytes.is_empty() {
        out.room()?;
        let buf = out.buf.slice_mut();
        let n = bytes.len().min(buf.len() - MARGIN - out.pos).max(1);
        for (slot, &byte) in buf[out.pos..out.pos + n].iter_mut().zip(&bytes[..n]) {
            *slot = T::literal(byte);
        }
        out.pos += n;
        bytes = &bytes[n..];
    }
    bits.pos = start + usize::from(len);
    bits.refill();
    Ok(())
}

/// The fixed-code tables, built once.
fn fixed_tables() -> &'static Tables {
    static FIXED: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    FIXED.get_or_init(Tables::fixed)
}

/// The state of a decoder running through blocks.
struct Decoder<'a> {
    bits: Bits<'a>,
    dynamic: Tables,
}

/// What a block header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockEnd {
    last: bool,
}

impl<'a> Decoder<'a> {
    fn new(input: &'a [u8], bit: usize) -> Decoder<'a> {
        Decoder {
            bits: Bits::at(input, bit),
            dynamic: Tables::new(),
        }
    }

    /// Decodes one whole block into `out`.
    fn block<T: Symbol>(&mut self, out: &mut Out<'_, T>) -> Res<BlockEnd> {
        self.bits.refill();
        let last = self.bits.take(1) == 1;
        match self.bits.take(2) {
            0 => stored(&mut self.bits, out)?,
            1 => {
                let fixed = fixed_tables();
                huffman(&mut self.bits, &fixed.lit, &fixed.dist, out)?;
            }
            2 => {
                self.dynamic.read_dynamic(&mut self.bits)?;
                huffman(&mut self.bits, &self.dynamic.lit, &self.dynamic.dist, out)?;
            }
            _ => return Err(Bad),
        }
        if self.bits.overrun() {
            return Err(Bad);
        }
        Ok(BlockEnd { last })
    }
}

/// The decoded tail: 16-bit symbols (bytes and window markers) first, then bytes: some in the
/// caller's region (see [`decode_tail`]), the rest in chunks.
pub(crate) struct Tail {
    marked: Vec<Chunk<u16>>,
    /// Bytes written to `region[marked_len()..]`.
    direct: usize,
    plain: Vec<Chunk<u8>>,
}

impl Tail {
    /// Length of the 16-bit part.
    fn marked_len(&self) -> usize {
        self.marked.iter().map(|c| c.data().len()).sum()
    }

    /// Decoded length.
    pub(crate) fn len(&self) -> usize {
        let plain: usize = self.plain.iter().map(|c| c.data().len()).sum();
        self.marked_len() + self.direct + plain
    }

    /// Whether the 16-bit part, resolved against `window`, starts with `bytes`.
    fn starts_with(&self, window: &[u8], bytes: &[u8]) -> bool {
        let mut symbols = self.marked.iter().flat_map(|c| c.data().iter().copied());
        bytes.iter().all(|&byte| {
            symbols.next().is_some_and(|symbol| match symbol {
                0..=255 => symbol == u16::from(byte),
                _ => window.get(usize::from(symbol - 256)) == Some(&byte),
            })
        })
    }

    /// Writes the 16-bit part into `marked_out` (exactly [`Tail::marked_len`] bytes),
    /// resolving markers against `window` (the [`WINDOW`] bytes before the split; `None` when
    /// there are none, when any marker is an error), and the chunks of bytes into `plain_out`
    /// (the rest after the direct part). Chunks are freed as they are copied, on all cores.
    fn write_to(
        self,
        window: Option<&[u8]>,
        marked_out: &mut [u8],
        plain_out: &mut [u8],
    ) -> Res<()> {
        if window.is_some_and(|w| w.len() != WINDOW)
            || marked_out.len() != self.marked_len()
            || marked_out.len() + self.direct + plain_out.len() != self.len()
        {
            return Err(Bad);
        }
        let mut pieces: Vec<(Piece, &mut [u8])> = Vec::new();
        let mut rest = marked_out;
        for chunk in self.marked {
            let (head, tail) = rest.split_at_mut(chunk.data().len());
            pieces.push((Piece::Marked(chunk), head));
            rest = tail;
        }
        let mut rest = plain_out;
        for chunk in self.plain {
            let (head, tail) = rest.split_at_mut(chunk.data().len());
            pieces.push((Piece::Plain(chunk), head));
            rest = tail;
        }
        pieces
            .into_par_iter()
            .try_for_each(|(piece, dst)| match piece {
                Piece::Plain(chunk) => {
                    dst.copy_from_slice(chunk.data());
                    Ok(())
                }
                Piece::Marked(chunk) => {
                    for (slot, &symbol) in dst.iter_mut().zip(chunk.data()) {
                        *slot = match symbol {
                            0..=255 => symbol as u8,
                            _ => *window
                                .and_then(|w| w.get(usize::from(symbol - 256)))
                                .ok_or(Bad)?,
                        };
                    }
                    Ok(())
                }
            })
    }
}

enum Piece {
    Marked(Chunk<u16>),
    Plain(Chunk<u8>),
}

/// The 16-bit window of an unknown history: marker `256 + k` for byte `k`.
fn markers() -> Vec<u16> {
    (0..WINDOW as u16).map(|k| 256 + k).collect()
}

/// Decodes from bit `bit` of the raw deflate stream `input` to its final block, which must end
/// in the last byte of `input`; at most `limit` bytes of output. Once the output is plain
/// bytes, at offset `m` (the 16-bit part's length), it goes to `region[m..]` (the window
/// before it) while that has room, then to chunks.
pub(crate) fn decode_tail(input: &[u8], bit: usize, limit: usize, region: &mut [u8]) -> Res<Tail> {
    let mut decoder = Decoder::new(input, bit);
    let mut marked = Out::new(&markers(), CHUNK_SYMBOLS, limit.min(MAX_MARKED));
    let mut last = false;
    while !last {
        last = decoder.block(&mut marked)?.last;
        if marked.window().iter().all(|&s| s < 256) {
            break;
        }
    }
    let n_marked = marked.len();
    let remaining = limit.saturating_sub(n_marked);
    let chunk = CHUNK_BYTES.min(remaining + WINDOW + MARGIN);
    // At least WINDOW symbols were decoded, or the window would still hold markers.
    let mut plain = match region.get_mut(n_marked.saturating_sub(WINDOW)..) {
        Some(rest) if !last && n_marked >= WINDOW && rest.len() >= 2 * WINDOW + MARGIN => {
            for (slot, &symbol) in rest.iter_mut().zip(marked.window()) {
                *slot = symbol as u8;
            }
            Out::in_region(rest, chunk, remaining)
        }
        _ => {
            let window: Vec<u8> = marked.window().iter().map(|&s| s as u8).collect();
            Out::new(&window, chunk, remaining)
        }
    };
    let (_, marked) = marked.finish()?;
    while !last {
        last = decoder.block(&mut plain)?.last;
    }
    let (direct, plain) = plain.finish()?;
    if decoder.bits.bit_pos().div_ceil(8) != input.len() {
        return Err(Bad);
    }
    Ok(Tail {
        marked,
        direct,
        plain,
    })
}

/// Whether the bits at `bit` start a non-final dynamic block whose code-length code is
/// complete (cheap: no tables are built).
fn plausible(input: &[u8], bit: usize) -> bool {
    let byte = bit / 8;
    let Some(bytes) = input.get(byte..byte + 16) else {
        return false;
    };
    let word = u128::from_le_bytes(bytes.try_into().unwrap_or([0; 16])) >> (bit % 8);
    // BFINAL 0, BTYPE 2 (read LSB first), HLIT <= 29, HDIST <= 29.
    if word & 7 != 0b100 || (word >> 3) & 31 > 29 || (word >> 8) & 31 > 29 {
        return false;
    }
    let n_clen = ((word >> 13) & 15) as u32 + 4;
    let mut kraft = 0u32;
    for i in 0..n_clen {
        let len = ((word >> (17 + 3 * i)) & 7) as u32;
        if len > 0 {
            kraft += 1 << (7 - len);
        }
    }
    kraft == 1 << 7
}

/// Whether decoding from `bit` gets through [`TRIAL_BLOCKS`] blocks (or the final one)
/// without an error, the first being a dynamic block with complete codes. `scratch` is reused
/// for the first check.
fn trial(input: &[u8], bit: usize, limit: usize, scratch: &mut Tables) -> bool {
    if !plausible(input, bit) {
        return false;
    }
    let mut bits = Bits::at(input, bit + 3);
    if !matches!(scratch.read_dynamic(&mut bits), Ok(true)) {
        return false;
    }
    let mut decoder = Decoder::new(input, bit);
    let mut out = Out::new(&markers(), 2 * WINDOW + MARGIN, limit);
    for _ in 0..TRIAL_BLOCKS {
        match decoder.block(&mut out) {
            Ok(end) if end.last => return decoder.bits.bit_pos().div_ceil(8) == input.len(),
            Ok(_) => {
                // Keep only the current chunk: trial output is not needed.
                out.done.clear();
            }
            Err(_) => return false,
        }
    }
    true
}

/// The first bit position in `[from, from + SEARCH_BITS)` where a non-final dynamic block
/// plausibly starts (checked by [`trial`]).
pub(crate) fn find_block(input: &[u8], from: usize, limit: usize) -> Option<usize> {
    let end = (from + SEARCH_BITS).min(input.len().saturating_sub(16) * 8);
    let mut scratch = Tables::new();
    (from..end).find(|&bit| trial(input, bit, limit, &mut scratch))
}

/// How far (as a fraction of the output) past its estimated end the head is inflated, so that
/// it covers the head even when the head compresses better than the whole.
const HEAD_SLACK: f64 = 0.02;
/// Bytes at the end of a full output buffer that libdeflate may have left unwritten when it
/// stops for lack of space (it stops before a match or stored block that does not fit).
const UNWRITTEN: usize = 65_535 + 258 + 8;

/// Inflates `input` with libdeflate into `out` until `out` is full; returns how many bytes at
/// its start are certainly written, `None` on invalid data.
fn inflate_prefix(input: &[u8], out: &mut [u8]) -> Option<usize> {
    match Decompressor::new().deflate_decompress(input, out) {
        Ok(n) => Some(n),
        Err(libdeflater::DecompressionError::InsufficientSpace) => {
            Some(out.len().saturating_sub(UNWRITTEN))
        }
        Err(libdeflater::DecompressionError::BadData) => None,
    }
}

/// Inflates the raw deflate stream `input` into exactly `out` using two threads; `None` when
/// the stream cannot be split or anything does not add up (the caller then inflates it
/// serially, and checks the CRC of what this produced).
///
/// The head is not cut off at the split: libdeflate inflates the whole stream into a prefix of
/// `out` a little longer than the head is estimated to be, and stops when that is full. This
/// needs no copy of the input, and costs only the slack inflated twice; a head longer than
/// the estimate is inflated again once its length is known.
pub(crate) fn inflate_split(input: &[u8], out: &mut [u8]) -> Option<()> {
    let total = out.len();
    let n_bits = input.len() * 8;
    let split = find_block(input, (n_bits as f64 * SPLIT_AT) as usize, total)?;
    let estimate = total as f64 * split as f64 / n_bits as f64;
    let reach = ((estimate + total as f64 * HEAD_SLACK) as usize + OVERLAP + UNWRITTEN).min(total);
    // Fault in the pages the head will fill on all cores; the tail faults its own region as it
    // writes it.
    out[..reach]
        .par_chunks_mut(crate::read::PREFAULT_CHUNK)
        .for_each(crate::read::touch_pages);
    let (head, region) = out.split_at_mut(reach);
    let (written, tail) = rayon::join(
        || inflate_prefix(input, head),
        || decode_tail(input, split, total, region).ok(),
    );
    let (written, tail) = (written?, tail?);
    let n_head = total.checked_sub(tail.len())?;
    let n_marked = tail.marked_len();
    // The head ran on past the split: where both decoded the same bytes they must agree,
    // which checks the split and the tail's length independently of the CRC.
    let overlap = OVERLAP.min(n_marked);
    if n_head < WINDOW || written < n_head + overlap || n_head > reach {
        return None;
    }
    let (done, rest) = out.split_at_mut(n_head);
    let window = &done[n_head - WINDOW..];
    if !tail.starts_with(window, &rest[..overlap]) {
        return None;
    }
    // The direct part moves down from `reach + n_marked` to its place after the 16-bit part.
    let direct = reach - n_head + n_marked..reach - n_head + n_marked + tail.direct;
    if tail.direct > 0 {
        rest.copy_within(direct, n_marked);
    }
    let (marked_out, rest) = rest.split_at_mut(n_marked);
    let plain_out = &mut rest[tail.direct..];
    tail.write_to(Some(window), marked_out, plain_out).ok()
}

/// Bytes past the split that the head and the tail must agree on.
const OVERLAP: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Bytes for libdeflate to inflate the head `[0, split)` of `input`: its bytes up to the split,
    /// then an empty final fixed-Huffman block.
    fn head_input(input: &[u8], split: usize) -> Vec<u8> {
        let n_bytes = split / 8;
        let shift = split % 8;
        let mut head = Vec::with_capacity(n_bytes + 8);
        head.extend_from_slice(&input[..n_bytes]);
        let partial = input
            .get(n_bytes)
            .map_or(0, |&b| u32::from(b) & ((1 << shift) - 1));
        // BFINAL 1, BTYPE 1 (fixed codes), then end-of-block, whose fixed code is seven 0 bits.
        let end = partial | (0b011 << shift);
        head.extend_from_slice(&end.to_le_bytes()[..3]);
        head.extend_from_slice(&[0; 4]);
        head
    }

    /// Inflates `input` whole with this module's decoder (from bit 0, no window).
    fn inflate_own(input: &[u8], limit: usize) -> Res<Vec<u8>> {
        let tail = decode_tail(input, 0, limit, &mut [])?;
        let mut out = vec![0; tail.len()];
        assemble(tail, None, &mut out)?;
        Ok(out)
    }

    /// Writes a tail decoded without a region into `out`.
    fn assemble(tail: Tail, window: Option<&[u8]>, out: &mut [u8]) -> Res<()> {
        let (marked_out, plain_out) = out.split_at_mut(tail.marked_len().min(out.len()));
        tail.write_to(window, marked_out, plain_out)
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// Test inputs of `len` bytes: zeros, random bytes (stored blocks), text-like, int16
    /// image-like (smooth values plus noise, as fMRI data).
    fn sample(kind: usize, len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        match kind {
            0 => vec![0; len],
            1 => (0..len).map(|_| rng.next() as u8).collect(),
            2 => {
                let words = [
                    "voxel ", "brain ", "the ", "mean ", "of ", "signal\n", "a ", "nifti ",
                ];
                let mut text = Vec::with_capacity(len + 8);
                while text.len() < len {
                    text.extend_from_slice(words[(rng.next() % 8) as usize].as_bytes());
                }
                text.truncate(len);
                text
            }
            _ => {
                let mut image = Vec::with_capacity(len + 2);
                let mut i = 0u64;
                while image.len() < len {
                    let base = 800.0
                        + 400.0
                            * ((i % 91) as f64 / 13.0).sin()
                            * ((i / 91 % 109) as f64 / 17.0).cos();
                    let noise = (rng.next() % 41) as f64 - 20.0;
                    let value = if (i / 91 / 109).is_multiple_of(3) {
                        0
                    } else {
                        (base + noise) as i16
                    };
                    image.extend_from_slice(&value.to_le_bytes());
                    i += 1;
                }
                image.truncate(len);
                image
            }
        }
    }

    fn zlib_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn libdeflate(data: &[u8], level: i32) -> Vec<u8> {
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
        let n = compressor.deflate_compress(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Every kind of data, compressed by zlib and libdeflate at several levels.
    fn corpus(len: usize) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut cases = Vec::new();
        for kind in 0..4 {
            let data = sample(kind, len, 7 + kind as u64);
            for level in [0, 1, 6, 9] {
                cases.push((
                    format!("kind {kind} zlib {level}"),
                    data.clone(),
                    zlib_deflate(&data, level),
                ));
            }
            for level in [1, 6, 12] {
                cases.push((
                    format!("kind {kind} libdeflate {level}"),
                    data.clone(),
                    libdeflate(&data, level),
                ));
            }
        }
        cases
    }

    #[test]
    fn the_decoder_inflates_what_zlib_and_libdeflate_write() {
        for (name, data, compressed) in corpus(300_000) {
            let ours = inflate_own(&compressed, data.len()).unwrap_or_else(|_| panic!("{name}"));
            assert!(ours == data, "{name}");
        }
        assert_eq!(inflate_own(&zlib_deflate(&[], 6), 0), Ok(Vec::new()));
    }

    #[test]
    fn the_decoder_refuses_output_past_its_limit_and_trailing_data() {
        let data = sample(2, 100_000, 3);
        let compressed = zlib_deflate(&data, 6);
        assert!(inflate_own(&compressed, data.len() - 1).is_err());
        let mut longer = compressed.clone();
        longer.push(0);
        assert!(inflate_own(&longer, data.len()).is_err());
        assert!(inflate_own(&compressed[..compressed.len() - 1], data.len()).is_err());
    }

    /// Splits the stream at every block boundary the search finds from several points and
    /// checks that head and tail together are the data.
    fn check_splits(name: &str, data: &[u8], compressed: &[u8]) -> usize {
        let mut n_split = 0;
        for tenth in [4, 8] {
            let from = compressed.len() * 8 * tenth / 10;
            let Some(split) = find_block(compressed, from, data.len()) else {
                continue;
            };
            n_split += 1;
            let head = head_input(compressed, split);
            let mut out = vec![0; data.len()];
            let n_head = Decompressor::new()
                .deflate_decompress(&head, &mut out)
                .unwrap();
            let tail = decode_tail(compressed, split, data.len(), &mut [])
                .unwrap_or_else(|_| panic!("{name} at {split}"));
            assert_eq!(n_head + tail.len(), data.len(), "{name} at {split}");
            let (done, rest) = out.split_at_mut(n_head);
            // A valid stream never reaches before its start, so padding a short head is fine.
            let mut window = vec![0; WINDOW.saturating_sub(n_head)];
            window.extend_from_slice(&done[n_head.saturating_sub(WINDOW)..]);
            assemble(tail, Some(&window), rest).unwrap_or_else(|_| panic!("{name} at {split}"));
            assert!(out == data, "{name} at {split}");
        }
        n_split
    }

    #[test]
    fn streams_split_at_found_blocks_inflate_to_the_data() {
        let mut n_split = 0;
        for (name, data, compressed) in corpus(250_000) {
            n_split += check_splits(&name, &data, &compressed);
        }
        assert!(n_split > 6, "only {n_split} splits found");
    }

    #[test]
    fn inflate_split_matches_serial_inflate() {
        for kind in 0..4 {
            let data = sample(kind, 1_500_000, 11);
            // zlib-rs's level 1 writes fixed-code blocks only, which are not searched for.
            for (level, compressed) in [(1, zlib_deflate(&data, 1)), (6, zlib_deflate(&data, 6))] {
                let mut out = vec![0; data.len()];
                if inflate_split(&compressed, &mut out).is_some() {
                    assert!(out == data, "kind {kind} level {level}");
                } else {
                    // Random data (stored blocks) have no dynamic block to find; zeros and
                    // text are a few blocks, the last of which may be the one found.
                    assert!(kind != 3 || level == 1, "kind {kind} level {level}");
                }
            }
        }
    }

    #[test]
    fn a_wrong_output_size_or_tiny_stream_is_refused() {
        let data = sample(2, 2_000_000, 5);
        let compressed = zlib_deflate(&data, 6);
        assert!(inflate_split(&compressed, &mut vec![0; data.len()]).is_some());
        assert!(inflate_split(&compressed, &mut vec![0; data.len() - 1]).is_none());
        assert!(inflate_split(&compressed, &mut vec![0; data.len() + 1]).is_none());
        let small = zlib_deflate(b"tiny", 6);
        assert!(inflate_split(&small, &mut [0; 4]).is_none());
        assert!(inflate_split(&[], &mut []).is_none());
    }

    #[test]
    fn corrupted_streams_never_give_wrong_output_silently() {
        let data = sample(3, 1_000_000, 9);
        let compressed = zlib_deflate(&data, 6);
        let mut rng = Rng(42);
        for _ in 0..20 {
            let mut bad = compressed.clone();
            let at = compressed.len() / 2 + (rng.next() as usize % (compressed.len() / 2));
            bad[at] ^= 1 << (rng.next() % 8);
            let mut out = vec![0; data.len()];
            // A flipped bit can decode to other valid data of the same length: the reader's
            // CRC check then sends it to the serial path.
            if inflate_split(&bad, &mut out).is_some() {
                assert!(out == data || crc32fast::hash(&out) != crc32fast::hash(&data));
            }
            let _ = inflate_own(&bad, data.len());
        }
    }

    #[test]
    fn the_reader_splits_large_streams_and_falls_back_on_a_bad_crc() {
        use crate::read::{inflate_checked, Inflate};
        let data = sample(3, 4 << 20, 13);
        let compressed = libdeflate(&data, 1);
        assert!(compressed.len() > 1 << 20);
        let crc = crc32fast::hash(&data);
        // A fresh stream split by hand agrees (so the reader's Auto path is the split one).
        let mut out = vec![0; data.len()];
        assert!(inflate_split(&compressed, &mut out).is_some());
        assert!(out == data);
        for pad in [0, 100] {
            let map = inflate_checked(&compressed, pad, data.len(), crc, Inflate::Auto);
            assert!(map.is_some_and(|map| map[pad..] == data[..]));
        }
        assert!(inflate_checked(&compressed, 0, data.len(), !crc, Inflate::Auto).is_none());
        assert!(inflate_checked(&compressed, 0, data.len() - 1, crc, Inflate::Auto).is_none());
    }

    /// Data made of pieces: literal bytes from a small or a full alphabet, runs, and repeats of
    /// earlier data at various distances (matches of every length and distance).
    fn pieces_data(pieces: &[(u8, u16, u16)], seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        let mut data = Vec::new();
        for &(kind, len, dist) in pieces {
            let len = usize::from(len);
            match kind % 4 {
                0 => data.extend((0..len).map(|_| (rng.next() % 4) as u8)),
                1 => data.extend((0..len).map(|_| rng.next() as u8)),
                2 => data.extend(std::iter::repeat_n(rng.next() as u8, len)),
                _ if !data.is_empty() => {
                    let from = data.len() - (usize::from(dist) % data.len()).max(1);
                    for i in 0..len {
                        data.push(data[from + i]);
                    }
                }
                _ => {}
            }
        }
        data
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// The decoder agrees with the data from the start, and so do head and tail split at
        /// any block the search finds.
        #[test]
        fn split_inflate_agrees_with_the_data(
            pieces in proptest::collection::vec((0u8..4, 1u16..3000, 1u16..40000), 1..120),
            seed in 0u64..1000,
            level in 1i32..13,
            zlib in proptest::bool::ANY,
        ) {
            let data = pieces_data(&pieces, seed);
            let compressed = if zlib {
                zlib_deflate(&data, (level as u32).min(9))
            } else {
                libdeflate(&data, level)
            };
            proptest::prop_assert!(inflate_own(&compressed, data.len()).ok() == Some(data.clone()));
            check_splits("proptest", &data, &compressed);
        }
    }

    /// Timings on a real file: `PINFLATE_PROBE=path/to/file.gz cargo test --release -p
    /// voxcalc-nifti --lib probe -- --nocapture` (without the variable it checks nothing);
    /// with `PINFLATE_TAIL_ONLY=1` it only decodes the tail three times, for `perf stat`.
    #[test]
    fn probe() {
        let Ok(path) = std::env::var("PINFLATE_PROBE") else {
            return;
        };
        let file = std::fs::read(path).unwrap();
        let start = crate::gz::member_header_len(&file).unwrap();
        let input = &file[start..file.len() - 8];
        let total = u32::from_le_bytes(file[file.len() - 4..].try_into().unwrap()) as usize;
        let time = |label: &str, f: &mut dyn FnMut()| {
            let t = std::time::Instant::now();
            f();
            let s = t.elapsed().as_secs_f64();
            eprintln!("{label}: {s:.3} s");
            s
        };
        if std::env::var("PINFLATE_TAIL_ONLY").is_ok() {
            let from = (input.len() as f64 * 8.0 * SPLIT_AT) as usize;
            let split = find_block(input, from, total).unwrap();
            let mut region = vec![0u8; total];
            for _ in 0..3 {
                let tail = decode_tail(input, split, total, &mut region).unwrap();
                std::hint::black_box(tail.len());
            }
            return;
        }
        let mut out = vec![0u8; total];
        out.iter_mut().step_by(4096).for_each(|b| *b = 1);
        time("libdeflate serial (prefaulted)", &mut || {
            Decompressor::new()
                .deflate_decompress(input, &mut out)
                .unwrap();
        });
        let from = (input.len() as f64 * 8.0 * SPLIT_AT) as usize;
        let mut split = 0;
        time("find_block", &mut || {
            split = find_block(input, from, total).unwrap()
        });
        eprintln!(
            "split at bit {split} ({:.4} of the stream, {} bits past the target)",
            split as f64 / (input.len() * 8) as f64,
            split - from
        );
        let mut n_tail = 0;
        let mut s = f64::MAX;
        for _ in 0..3 {
            s = s.min(time("decode_tail alone", &mut || {
                n_tail = decode_tail(input, split, total, &mut []).unwrap().len()
            }));
        }
        let tail = decode_tail(input, split, total, &mut []).unwrap();
        eprintln!(
            "tail {n_tail} bytes: {:.0} MB/s; marked symbols {}",
            n_tail as f64 / s / 1e6,
            tail.marked.iter().map(|c| c.data().len()).sum::<usize>()
        );
        let head = head_input(input, split);
        let mut n_head = 0;
        let mut s = f64::MAX;
        for _ in 0..3 {
            s = s.min(time("libdeflate head alone (prefaulted)", &mut || {
                n_head = Decompressor::new()
                    .deflate_decompress(&head, &mut out)
                    .unwrap()
            }));
        }
        eprintln!("head {n_head} bytes: {:.0} MB/s", n_head as f64 / s / 1e6);
        for _ in 0..3 {
            let mut fresh = vec![0u8; total];
            let t = std::time::Instant::now();
            let (n_head, tail) = rayon::join(
                || {
                    Decompressor::new()
                        .deflate_decompress(&head, &mut fresh)
                        .unwrap()
                },
                || decode_tail(input, split, total, &mut []).unwrap(),
            );
            let t_join = t.elapsed().as_secs_f64();
            let (done, rest) = fresh.split_at_mut(n_head);
            assemble(tail, Some(&done[n_head - WINDOW..]), rest).unwrap();
            eprintln!(
                "join {t_join:.3} s, then write_to {:.3} s",
                t.elapsed().as_secs_f64() - t_join
            );
        }
        // The reader's whole path (fresh buffer, inflate, CRC), serial and split alternately.
        use crate::read::{inflate_checked, Inflate};
        let crc = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..9 {
            for (i, how) in [Inflate::Serial, Inflate::Auto].into_iter().enumerate() {
                let t = std::time::Instant::now();
                let map = inflate_checked(input, 0, total, crc, how).unwrap();
                times[i].push(t.elapsed().as_secs_f64());
                drop(map);
            }
        }
        for (label, mut t) in ["serial", "split"].into_iter().zip(times) {
            t.sort_by(f64::total_cmp);
            eprintln!(
                "inflate_checked {label}: median {:.3} s, min {:.3} s, all {t:.3?}",
                t[4], t[0]
            );
        }
    }
}
