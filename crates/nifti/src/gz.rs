//! A gzip reader over an in-memory (mapped) compressed file: multi-member aware, every member's
//! CRC-32 and length verified, and each `read` inflates straight into the caller's buffer in one
//! call (no intermediate input or output copies: a whole volume is one `read`).

use std::cell::RefCell;
use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};
use libdeflater::{CompressionLvl, Compressor, DecompressionError, Decompressor};

/// Flag bits of the gzip member header (RFC 1952).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Streams the decompressed bytes of a gzip file held in memory.
pub(crate) struct GzSlice<'a> {
    input: &'a [u8],
    pos: usize,
    inflater: Decompress,
    in_member: bool,
    crc: crc32fast::Hasher,
    member_len: u64,
}

fn corrupt(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

fn truncated(detail: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, detail.to_string())
}

/// Length of the gzip member header (RFC 1952: fixed part, extra field, name, comment, header
/// CRC) at the start of `input`.
pub(crate) fn member_header_len(input: &[u8]) -> io::Result<usize> {
    if !input.starts_with(&[0x1f, 0x8b][..input.len().min(2)]) {
        return Err(corrupt(
            "invalid gzip member header (expected the magic bytes 1f 8b)".to_string(),
        ));
    }
    if input.len() < 10 {
        return Err(truncated("gzip member header truncated"));
    }
    if input[2] != 8 {
        return Err(corrupt(format!(
            "unsupported gzip compression method {} (only deflate, 8, exists)",
            input[2]
        )));
    }
    let flags = input[3];
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let len_bytes = input
            .get(at..at + 2)
            .ok_or_else(|| truncated("gzip extra field truncated"))?;
        at += 2 + usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = input
                .get(at..)
                .and_then(|r| r.iter().position(|&b| b == 0))
                .ok_or_else(|| truncated("gzip file name or comment truncated"))?;
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    if at > input.len() {
        return Err(truncated("gzip member header truncated"));
    }
    Ok(at)
}

impl<'a> GzSlice<'a> {
    /// Reads the gzip file in `input` (which starts with the gzip magic bytes).
    pub(crate) fn new(input: &'a [u8]) -> GzSlice<'a> {
        GzSlice {
            input,
            pos: 0,
            inflater: Decompress::new(false),
            in_member: false,
            crc: crc32fast::Hasher::new(),
            member_len: 0,
        }
    }

    /// Compressed bytes read so far.
    pub(crate) fn consumed(&self) -> usize {
        self.pos
    }

    /// Parses a member header at `pos` and moves past it.
    fn start_member(&mut self) -> io::Result<()> {
        let at = member_header_len(&self.input[self.pos..]).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                corrupt(format!("{e} at byte {}", self.pos))
            } else {
                e
            }
        })?;
        self.pos += at;
        self.inflater.reset(false);
        self.crc = crc32fast::Hasher::new();
        self.member_len = 0;
        self.in_member = true;
        Ok(())
    }

    /// Checks the CRC-32 and length trailer of the member that just ended.
    fn end_member(&mut self) -> io::Result<()> {
        let trailer = self
            .input
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| truncated("gzip member trailer (CRC and length) truncated"))?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let ours = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        if ours != crc {
            return Err(corrupt(format!(
                "gzip CRC mismatch: the trailer says {crc:08x}, the data give {ours:08x}"
            )));
        }
        if self.member_len as u32 != len {
            return Err(corrupt(format!(
                "gzip length mismatch: the trailer says {len}, the member holds {} (mod 2^32)",
                self.member_len as u32
            )));
        }
        self.pos += 8;
        self.in_member = false;
        Ok(())
    }
}

impl Read for GzSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_member {
                // End of file, possibly after zero padding (which gzip tools accept).
                if self.input[self.pos..].iter().all(|&b| b == 0) {
                    self.pos = self.input.len();
                    return Ok(0);
                }
                self.start_member()?;
            }
            let (in_before, out_before) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress(&self.input[self.pos..], buf, FlushDecompress::None)
                .map_err(|e| corrupt(format!("invalid deflate data: {e}")))?;
            let consumed = (self.inflater.total_in() - in_before) as usize;
            let produced = (self.inflater.total_out() - out_before) as usize;
            self.pos += consumed;
            self.crc.update(&buf[..produced]);
            self.member_len += produced as u64;
            if status == Status::StreamEnd {
                self.end_member()?;
            } else if consumed == 0 && produced == 0 {
                return Err(truncated("gzip stream truncated inside a member"));
            }
            if produced > 0 {
                return Ok(produced);
            }
        }
    }
}

/// The `FEXTRA` subfield voxcalc writes in each gzip member: `V`, `C`, length 4, then the whole
/// member's size in bytes (u32, little-endian), as BGZF does with its `BC` subfield. Readers that
/// do not know it skip it (RFC 1952); voxcalc uses it to find member boundaries without inflating
/// and so inflate members in parallel.
const INDEX_SUBFIELD: [u8; 2] = *b"VC";
/// Header length of a member written by [`gzip_member`]: 10 fixed bytes, XLEN, one subfield.
const INDEXED_HEADER_LEN: usize = 10 + 2 + 4 + 4;
/// Members larger than this (uncompressed) are not inflated in parallel (guards the header
/// member's buffer against a hostile ISIZE).
const MAX_INDEXED_MEMBER: usize = 64 << 20;

thread_local! {
    /// Each thread's libdeflate compressor and its level (allocating one per member would cost
    /// more than compressing a small member).
    static COMPRESSOR: RefCell<Option<(i32, Compressor)>> = const { RefCell::new(None) };
    /// Each thread's libdeflate decompressor.
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Compresses `body` as one gzip member carrying the size subfield, into `out` (cleared first;
/// passing a used buffer back in avoids faulting in fresh memory for every member). `level` is
/// libdeflate's (0-12; 0 stores, 1 is fastest); at level 1, a member whose sample shows that
/// LZ77 matching would save little ([`matching_pays`]) is Huffman-coded without matching
/// ([`crate::deflate::huffman_only`]), several times faster for a file about as small.
pub(crate) fn gzip_member(body: &[u8], level: u32, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    let level = level.min(12) as i32;
    out.clear();
    out.extend_from_slice(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&INDEX_SUBFIELD);
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    if level == 1 && !matching_pays(body)? {
        let mut bits = crate::deflate::BitWriter::new(out);
        crate::deflate::huffman_only(body, true, &mut bits);
        out = bits.finish();
    } else {
        with_compressor(level, |compressor| {
            let bound = compressor.deflate_compress_bound(body.len());
            out.resize(INDEXED_HEADER_LEN + bound, 0);
            let n = compressor
                .deflate_compress(body, &mut out[INDEXED_HEADER_LEN..])
                .map_err(io::Error::other)?;
            out.truncate(INDEXED_HEADER_LEN + n);
            Ok(())
        })?;
    }
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let size = u32::try_from(out.len())
        .map_err(|_| io::Error::other("a gzip member exceeds 4 GiB; use smaller blocks"))?;
    out[16..20].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

/// Runs `f` with this thread's libdeflate compressor for `level`.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut Compressor) -> io::Result<T>,
) -> io::Result<T> {
    let lvl = CompressionLvl::new(level)
        .map_err(|_| io::Error::other(format!("invalid compression level {level}")))?;
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(cached, _)| *cached != level) {
            *cell = Some((level, Compressor::new(lvl)));
        }
        let (_, compressor) = cell.as_mut().expect("set just above");
        f(compressor)
    })
}

/// Bytes sampled from each quarter of a member by [`matching_pays`].
const SAMPLE_PART: usize = 4 << 10;

/// Whether libdeflate's level 1 (LZ77 matching, then Huffman coding) makes `body` at least 10%
/// smaller than Huffman coding alone would, judged on a sample (four spread slices of 4 KiB):
/// noisy float data (most computed results) gain nothing from matching, images with background
/// or repeated values gain a lot. Deterministic, so the same data always give the same file.
fn matching_pays(body: &[u8]) -> io::Result<bool> {
    let sample: std::borrow::Cow<[u8]> = if body.len() <= 4 * SAMPLE_PART {
        body.into()
    } else {
        let step = body.len() / 4;
        (0..4)
            .flat_map(|i| &body[i * step..i * step + SAMPLE_PART])
            .copied()
            .collect::<Vec<u8>>()
            .into()
    };
    let huffman = crate::deflate::huffman_only_len(&sample);
    let matched = with_compressor(1, |compressor| {
        let mut scratch = vec![0u8; compressor.deflate_compress_bound(sample.len())];
        compressor
            .deflate_compress(&sample, &mut scratch)
            .map_err(io::Error::other)
    })?;
    Ok(matched * 10 < huffman * 9)
}

/// Inflates the raw deflate stream `deflate` with libdeflate into exactly `out`: an error when
/// the stream is invalid or does not fill `out` exactly.
pub(crate) fn inflate_exact(deflate: &[u8], out: &mut [u8]) -> io::Result<()> {
    let produced = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = cell.get_or_insert_with(Decompressor::new);
        decompressor.deflate_decompress(deflate, out)
    });
    match produced {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(corrupt(format!(
            "the deflate stream ends after {n} of {} bytes",
            out.len()
        ))),
        Err(DecompressionError::InsufficientSpace) => Err(corrupt(format!(
            "the deflate stream holds more than {} bytes",
            out.len()
        ))),
        Err(DecompressionError::BadData) => Err(corrupt("invalid deflate data".to_string())),
    }
}

/// Largest payload of one stored (uncompressed) deflate block.
const STORED_BLOCK_MAX: usize = 65_535;

/// Size of the member [`stored_member`] builds for a payload of `payload_len` bytes: known
/// before the payload is, so a writer can reserve room for a header that is filled in last.
pub(crate) fn stored_member_len(payload_len: usize) -> usize {
    let n_blocks = payload_len.div_ceil(STORED_BLOCK_MAX).max(1);
    INDEXED_HEADER_LEN + n_blocks * 5 + payload_len + 8
}

/// `payload` as one gzip member of stored (uncompressed) deflate blocks carrying the size
/// subfield. Its length depends only on the payload's length ([`stored_member_len`]).
pub(crate) fn stored_member(payload: &[u8]) -> io::Result<Vec<u8>> {
    let total = stored_member_len(payload.len());
    let size = u32::try_from(total)
        .map_err(|_| io::Error::other("a gzip member exceeds 4 GiB; use smaller blocks"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&INDEX_SUBFIELD);
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    let mut blocks = payload.chunks(STORED_BLOCK_MAX).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let is_final = u8::from(blocks.peek().is_none());
        let len = block.len() as u16;
        out.push(is_final);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// One member of an indexed gzip file.
pub(crate) struct Member {
    /// Byte range of the raw deflate data in the compressed file.
    pub deflate: std::ops::Range<usize>,
    /// Decompressed length (from the trailer's ISIZE; checked when inflating).
    pub out_len: usize,
    /// CRC-32 from the trailer.
    pub crc: u32,
}

/// Lists the members of a gzip file whose every member carries voxcalc's size subfield, or
/// `None` (any other file, or anything inconsistent: the caller then streams it and reports
/// errors from there).
pub(crate) fn member_index(input: &[u8]) -> Option<Vec<Member>> {
    let mut members = Vec::new();
    let mut pos = 0usize;
    while pos < input.len() {
        let rest = &input[pos..];
        if !members.is_empty() && rest.iter().all(|&b| b == 0) {
            break;
        }
        let header = rest.get(..INDEXED_HEADER_LEN)?;
        let xlen = u16::from_le_bytes([header[10], header[11]]);
        if header[..4] != [0x1f, 0x8b, 8, FEXTRA]
            || xlen != 8
            || header[12..14] != INDEX_SUBFIELD
            || header[14..16] != 4u16.to_le_bytes()
        {
            return None;
        }
        let size = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
        if size < INDEXED_HEADER_LEN + 8 || size > rest.len() {
            return None;
        }
        let trailer = &rest[size - 8..size];
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let out_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
        // deflate expands at most 1032:1, so a larger ISIZE is a lie (checked before anything
        // is allocated for it).
        let deflate_len = size - INDEXED_HEADER_LEN - 8;
        if out_len > MAX_INDEXED_MEMBER || out_len > deflate_len * 1032 + 64 {
            return None;
        }
        members.push(Member {
            deflate: pos + INDEXED_HEADER_LEN..pos + size - 8,
            out_len,
            crc,
        });
        pos += size;
    }
    (!members.is_empty()).then_some(members)
}

/// Inflates one indexed member into `out` (exactly `member.out_len` bytes) and checks its CRC.
pub(crate) fn inflate_member(input: &[u8], member: &Member, out: &mut [u8]) -> io::Result<()> {
    inflate_exact(&input[member.deflate.clone()], out).map_err(|_| {
        corrupt(format!(
            "a gzip member at byte {} does not inflate to the {} bytes its trailer declares",
            member.deflate.start,
            out.len()
        ))
    })?;
    if crc32fast::hash(out) != member.crc {
        return Err(corrupt(format!(
            "gzip CRC mismatch in the member at byte {}",
            member.deflate.start
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// float64 values with noisy mantissas, as z-scores are.
    fn noisy_f64(n: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0).to_le_bytes()
            })
            .collect()
    }

    fn gunzip(member: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(member)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn level_one_skips_matching_only_where_it_does_not_pay() {
        let noisy = noisy_f64(1 << 17);
        assert!(!matching_pays(&noisy).unwrap());
        // An image with background: runs of zeros and repeated values.
        let background: Vec<u8> = (0..1u32 << 20)
            .map(|i| {
                if (i / 4096) % 3 == 0 {
                    (i % 17) as u8
                } else {
                    0
                }
            })
            .collect();
        assert!(matching_pays(&background).unwrap());
        for body in [&noisy[..], &background[..], &[][..], &[1, 2, 3][..]] {
            let member = gzip_member(body, 1, Vec::new()).unwrap();
            assert_eq!(gunzip(&member), body);
            let index = member_index(&member).expect("the size subfield is set");
            let mut out = vec![0; index[0].out_len];
            inflate_member(&member, &index[0], &mut out).unwrap();
            assert_eq!(out, body);
        }
        // Huffman coding alone is about as small as libdeflate's level 1 on noisy floats.
        let fast = gzip_member(&noisy, 1, Vec::new()).unwrap().len();
        let mut matched = vec![0; noisy.len() * 2];
        let n = Compressor::new(CompressionLvl::new(1).unwrap())
            .deflate_compress(&noisy, &mut matched)
            .unwrap();
        assert!(fast < n + n / 50, "{fast} vs {n}");
    }
}
