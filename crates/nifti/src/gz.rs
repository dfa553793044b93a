//! A gzip reader over an in-memory (mapped) compressed file: multi-member aware, every member's
//! CRC-32 and length verified, and each `read` inflates straight into the caller's buffer in one
//! call (no intermediate input or output copies: a whole volume is one `read`).

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};

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

    /// Parses a member header at `pos` and moves past it.
    fn start_member(&mut self) -> io::Result<()> {
        let rest = &self.input[self.pos..];
        if !rest.starts_with(&[0x1f, 0x8b][..rest.len().min(2)]) {
            return Err(corrupt(format!(
                "invalid gzip member header at byte {} (expected the magic bytes 1f 8b)",
                self.pos
            )));
        }
        if rest.len() < 10 {
            return Err(truncated("gzip member header truncated"));
        }
        if rest[2] != 8 {
            return Err(corrupt(format!(
                "unsupported gzip compression method {} (only deflate, 8, exists)",
                rest[2]
            )));
        }
        let flags = rest[3];
        let mut at = 10usize;
        if flags & FEXTRA != 0 {
            let len_bytes = rest
                .get(at..at + 2)
                .ok_or_else(|| truncated("gzip extra field truncated"))?;
            at += 2 + usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let end = rest
                    .get(at..)
                    .and_then(|r| r.iter().position(|&b| b == 0))
                    .ok_or_else(|| truncated("gzip file name or comment truncated"))?;
                at += end + 1;
            }
        }
        if flags & FHCRC != 0 {
            at += 2;
        }
        if at > rest.len() {
            return Err(truncated("gzip member header truncated"));
        }
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

/// Compresses `head` followed by `body` as one gzip member carrying the size subfield, into
/// `out` (cleared first; passing a used buffer back in avoids faulting in fresh memory for
/// every member).
pub(crate) fn gzip_member(
    head: &[u8],
    body: &[u8],
    level: flate2::Compression,
    mut out: Vec<u8>,
) -> io::Result<Vec<u8>> {
    out.clear();
    out.reserve(INDEXED_HEADER_LEN + (head.len() + body.len()) / 2 + 1024);
    out.extend_from_slice(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&INDEX_SUBFIELD);
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut deflater = flate2::Compress::new(level, false);
    deflate_into(&mut deflater, head, flate2::FlushCompress::None, &mut out)?;
    deflate_into(&mut deflater, body, flate2::FlushCompress::Finish, &mut out)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    crc.update(body);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&((head.len() + body.len()) as u32).to_le_bytes());
    let size = u32::try_from(out.len())
        .map_err(|_| io::Error::other("a gzip member exceeds 4 GiB; use smaller blocks"))?;
    out[16..20].copy_from_slice(&size.to_le_bytes());
    Ok(out)
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

fn deflate_into(
    deflater: &mut flate2::Compress,
    mut input: &[u8],
    flush: flate2::FlushCompress,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(1 << 16));
        }
        let before = deflater.total_in();
        let status = deflater
            .compress_vec(input, out, flush)
            .map_err(io::Error::other)?;
        input = &input[(deflater.total_in() - before) as usize..];
        let finished = match flush {
            flate2::FlushCompress::Finish => status == Status::StreamEnd,
            _ => input.is_empty(),
        };
        if finished {
            return Ok(());
        }
    }
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
    let mut inflater = Decompress::new(false);
    let status = inflater
        .decompress(&input[member.deflate.clone()], out, FlushDecompress::Finish)
        .map_err(|e| corrupt(format!("invalid deflate data: {e}")))?;
    if status != Status::StreamEnd || inflater.total_out() != out.len() as u64 {
        return Err(corrupt(format!(
            "a gzip member at byte {} does not inflate to the {} bytes its trailer declares",
            member.deflate.start,
            out.len()
        )));
    }
    if crc32fast::hash(out) != member.crc {
        return Err(corrupt(format!(
            "gzip CRC mismatch in the member at byte {}",
            member.deflate.start
        )));
    }
    Ok(())
}
