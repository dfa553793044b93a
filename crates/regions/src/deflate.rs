//! A fast gzip encoder for piecewise-constant data (images rebuilt from region signals: runs of
//! one value per region, zeros elsewhere). It writes one fixed-Huffman deflate block per member,
//! coding each run of identical elements as the element's bytes followed by back-references at
//! distance = element size, so its cost is one comparison per element instead of a general LZ77
//! search. Any inflater reads it (it is plain RFC 1951/1952); data without runs are stored as
//! fixed-Huffman literals (about 6% larger than raw).

use voxcalc_nifti::deflate::{reverse_bits as reverse, BitWriter};

/// The fixed literal/length code of symbol `sym` (RFC 1951, 3.2.6), bit-reversed, and its length.
const fn fixed_code(sym: u32) -> (u32, u32) {
    if sym <= 143 {
        (reverse(0x30 + sym, 8), 8)
    } else if sym <= 255 {
        (reverse(0x190 + sym - 144, 9), 9)
    } else if sym <= 279 {
        (reverse(sym - 256, 7), 7)
    } else {
        (reverse(0xC0 + sym - 280, 8), 8)
    }
}

const LITERAL_CODES: [(u32, u32); 288] = {
    let mut table = [(0, 0); 288];
    let mut sym = 0;
    while sym < 288 {
        table[sym] = fixed_code(sym as u32);
        sym += 1;
    }
    table
};

/// Base lengths and extra bits of length symbols 257..=285.
const LENGTH_BASE: [u32; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// For each match length 3..=258: (bit-reversed code, code length, extra value, extra bits).
const LENGTH_CODES: [(u32, u32, u32, u32); 259] = {
    let mut table = [(0, 0, 0, 0); 259];
    let mut len = 3;
    while len <= 258 {
        let mut idx = 28;
        while LENGTH_BASE[idx] > len as u32 {
            idx -= 1;
        }
        let (code, code_len) = fixed_code(257 + idx as u32);
        table[len] = (
            code,
            code_len,
            len as u32 - LENGTH_BASE[idx],
            LENGTH_EXTRA[idx],
        );
        len += 1;
    }
    table
};

/// Distance code, extra value and extra bits for distances 1..=8 (element sizes).
fn distance_code(distance: usize) -> (u32, u32, u32) {
    match distance {
        1..=4 => (reverse(distance as u32 - 1, 5), 0, 0),
        5 | 6 => (reverse(4, 5), distance as u32 - 5, 1),
        _ => (reverse(5, 5), distance as u32 - 7, 1),
    }
}

struct Encoder {
    bits: BitWriter,
    distance: (u32, u32, u32),
}

impl Encoder {
    #[inline]
    fn literal(&mut self, byte: u8) {
        let (code, len) = LITERAL_CODES[byte as usize];
        self.bits.put(code, len);
    }

    /// Back-references of `n_bytes` in total at the element distance.
    fn repeat(&mut self, total: usize, data_before: &[u8]) {
        let mut n_bytes = total;
        while n_bytes > 0 {
            let take = if n_bytes >= 261 || n_bytes == 258 {
                258
            } else if n_bytes > 258 {
                n_bytes - 3
            } else {
                n_bytes
            };
            if take < 3 {
                // Too short for a match: the bytes repeat the previous element.
                let period = data_before.len();
                let emitted = total - n_bytes;
                for i in 0..take {
                    self.literal(data_before[(emitted + i) % period]);
                }
                return;
            }
            let (code, len, extra, extra_bits) = LENGTH_CODES[take];
            self.bits.put(code, len);
            if extra_bits > 0 {
                self.bits.put(extra, extra_bits);
            }
            let (dcode, dextra, dextra_bits) = self.distance;
            self.bits.put(dcode, 5);
            if dextra_bits > 0 {
                self.bits.put(dextra, dextra_bits);
            }
            n_bytes -= take;
        }
    }
}

/// Builds one gzip member from a sequence of runs of equal elements (the structure the caller
/// already knows, e.g. gaps and regions of a volume), without scanning the bytes for repeats.
pub struct RunEncoder {
    encoder: Encoder,
    size: usize,
    /// The last element pushed, as an integer (its bytes, zero-padded), for a cheap compare.
    last: Option<u64>,
    n_bytes: usize,
}

impl RunEncoder {
    /// An encoder for elements of `element_size` bytes (1 to 8).
    pub fn new(element_size: usize) -> RunEncoder {
        let size = element_size.clamp(1, 8);
        let mut header = Vec::with_capacity(4096);
        header.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut encoder = Encoder {
            bits: BitWriter::new(header),
            distance: distance_code(size),
        };
        // BFINAL = 1, BTYPE = 01 (fixed Huffman).
        encoder.bits.put(1, 1);
        encoder.bits.put(1, 2);
        RunEncoder {
            encoder,
            size,
            last: None,
            n_bytes: 0,
        }
    }

    /// Appends `count` copies of `element` (`element_size` bytes).
    pub fn push(&mut self, element: &[u8], count: usize) {
        if count == 0 {
            return;
        }
        let element = &element[..self.size];
        let mut padded = [0u8; 8];
        padded[..self.size].copy_from_slice(element);
        let key = u64::from_le_bytes(padded);
        let n_repeats = if self.last == Some(key) {
            count
        } else {
            for &byte in element {
                self.encoder.literal(byte);
            }
            self.last = Some(key);
            count - 1
        };
        self.encoder.repeat(n_repeats * self.size, element);
        self.n_bytes += count * self.size;
    }

    /// Ends the member. `data` are the bytes pushed (their CRC goes in the trailer).
    pub fn finish(self, data: &[u8]) -> Vec<u8> {
        debug_assert_eq!(data.len(), self.n_bytes);
        let mut encoder = self.encoder;
        let (code, len) = LITERAL_CODES[256];
        encoder.bits.put(code, len);
        let mut out = encoder.bits.finish();
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }
}

/// One gzip member holding `data` (elements of `element_size` bytes), found runs and all.
#[cfg(test)]
pub fn gzip_runs(data: &[u8], element_size: usize) -> Vec<u8> {
    let size = element_size.clamp(1, 8);
    let mut encoder = RunEncoder::new(size);
    let mut elements = data.chunks_exact(size).peekable();
    while let Some(element) = elements.next() {
        let mut count = 1;
        while elements.next_if_eq(&element).is_some() {
            count += 1;
        }
        encoder.push(element, count);
    }
    let tail = &data[data.len() - data.len() % size..];
    for &byte in tail {
        encoder.encoder.literal(byte);
    }
    encoder.n_bytes += tail.len();
    encoder.finish(data)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::gzip_runs;

    fn inflate(member: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn inflates_to_the_input() {
        let mut state = 7u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect()
        };
        let mut runs = Vec::new();
        for (value, count) in [
            (0.0f32, 1000),
            (1.5, 1),
            (1.5, 0),
            (-2.0, 2),
            (3.0, 64),
            (0.0, 5),
        ] {
            for _ in 0..count {
                runs.extend_from_slice(&value.to_ne_bytes());
            }
        }
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (Vec::new(), 4),
            (vec![0; 1], 1),
            (vec![0; 2], 1),
            (vec![7; 3], 1),
            (vec![0; 100_000], 8),
            (runs.clone(), 4),
            (runs, 2),
            (noise(10_000), 4),
            (noise(1001), 8),
        ];
        for len in [
            255, 256, 257, 258, 259, 260, 261, 262, 263, 516, 517, 518, 519,
        ] {
            let data = vec![9u8; len];
            assert_eq!(inflate(&gzip_runs(&data, 1)), data, "{len} equal bytes");
            let data: Vec<u8> = (0..len).map(|i| [1, 2][i % 2]).collect();
            assert_eq!(
                inflate(&gzip_runs(&data, 2)),
                data,
                "{len} bytes of period 2"
            );
        }
        for (data, element_size) in cases {
            assert_eq!(inflate(&gzip_runs(&data, element_size)), data);
        }
        // Distances 5..=8 use extra bits.
        for element_size in [5, 6, 7, 8] {
            let data: Vec<u8> = (0..element_size * 300)
                .map(|i| (i % element_size) as u8)
                .collect();
            assert_eq!(inflate(&gzip_runs(&data, element_size)), data);
        }
    }

    proptest::proptest! {
        /// Any sequence of runs (lengths around the 258-byte match limit included) inflates to
        /// the bytes pushed.
        #[test]
        fn pushed_runs_inflate_to_their_bytes(
            size in proptest::sample::select(vec![1usize, 2, 4, 8]),
            runs in proptest::collection::vec((0u64..4, 0usize..700), 0..40),
        ) {
            let mut encoder = super::RunEncoder::new(size);
            let mut data = Vec::new();
            for &(value, count) in &runs {
                let element = &value.to_le_bytes()[..size];
                encoder.push(element, count);
                for _ in 0..count {
                    data.extend_from_slice(element);
                }
            }
            proptest::prop_assert_eq!(inflate(&encoder.finish(&data)), data);
        }

        /// Arbitrary bytes from a small alphabet (many short repeats) round-trip too.
        #[test]
        fn scanned_bytes_inflate_to_themselves(
            size in 1usize..9,
            data in proptest::collection::vec(0u8..3, 0..3000),
        ) {
            proptest::prop_assert_eq!(inflate(&gzip_runs(&data, size)), data);
        }
    }

    #[test]
    fn runs_compress_well() {
        let data = vec![0u8; 1 << 20];
        assert!(gzip_runs(&data, 4).len() < 16_000);
    }
}
