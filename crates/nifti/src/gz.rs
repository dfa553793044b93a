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
