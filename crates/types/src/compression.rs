//! Kafka's record-batch compression codecs: the codec id in a v2 batch's attributes, and the
//! byte formats Kafka clients actually write for the records section of a batch.
//!
//! This module owns the wire details of each codec:
//!
//! - **gzip**: a gzip stream (RFC 1952); several concatenated members are read as one.
//! - **snappy**: Java clients write snappy-java's "xerial" framing (a 16-byte header, then
//!   `[big-endian i32 length][raw snappy block]` chunks of at most 32 KiB of input), while
//!   librdkafka writes one raw snappy block. Both are read; the xerial framing is written.
//! - **lz4**: the standard LZ4 frame format, written as Kafka's Java producer does (64 KiB
//!   independent blocks, no content size, no checksums). Java's reader rejects linked blocks.
//! - **zstd**: standard zstd frames.
//!
//! Decompression never allocates for a size the input claims beyond the caller's limit: output
//! is produced in bounded steps and stops with [`CompressionError::TooLarge`] as soon as it
//! passes the limit.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// The codec in bits 0-2 of a v2 record batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records stored as they are (id 0).
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy, xerial-framed or raw (id 2).
    Snappy,
    /// LZ4 frame format (id 3).
    Lz4,
    /// Zstandard (id 4).
    Zstd,
}

/// Bits 0-2 of the batch attributes.
const CODEC_MASK: i16 = 0x7;

impl Compression {
    /// From the attribute bits (`attributes & 0x7`); ids 5 to 7 are
    /// [`CompressionError::UnknownCodec`].
    pub fn from_attributes(attributes: i16) -> Result<Compression, CompressionError> {
        match attributes & CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            id => Err(CompressionError::UnknownCodec(id)),
        }
    }

    /// The 3-bit id written in the attributes (0 to 4).
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's config name: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl FromStr for Compression {
    type Err = CompressionError;

    /// Parses one of the five names of [`Compression::name`], case-sensitively as Kafka does.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(CompressionError::UnknownName(other.to_owned())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Why a codec could not be identified, or data could not be (de)compressed.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The attributes name codec id 5, 6 or 7, which Kafka does not define.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(i16),
    /// A codec name other than the five Kafka config names.
    #[error("unknown compression codec name {0:?}")]
    UnknownName(String),
    /// The input is not valid data for the codec (or, when compressing, the codec library
    /// failed, which in-memory output never makes happen in practice).
    #[error("the {codec} data is corrupt")]
    Corrupt {
        /// The codec that rejected the data.
        codec: Compression,
        /// What the codec reported.
        #[source]
        source: io::Error,
    },
    /// The decompressed output would exceed the caller's limit.
    #[error("the {codec} data decompresses to more than {limit} bytes")]
    TooLarge {
        /// The codec being decompressed.
        codec: Compression,
        /// The limit, in bytes, that was passed.
        limit: usize,
    },
}

/// Decompresses the records section of a batch compressed with `codec`.
///
/// Output longer than `limit` bytes is [`CompressionError::TooLarge`]; it is detected while
/// decoding, so hostile input cannot make this allocate much more than `limit`, plus a codec's
/// working memory (an LZ4 frame's block buffers, at most 12 MiB; a zstd window, reserved up to
/// 128 MiB as Kafka's own decoder allows, but touched only as output is written). Empty input
/// is corrupt for every codec but [`Compression::None`].
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None if input.len() > limit => {
            Err(CompressionError::TooLarge { codec, limit })
        }
        Compression::None => Ok(input.to_vec()),
        _ if input.is_empty() => Err(corrupt(codec, "empty input")),
        Compression::Gzip => {
            let mut out = output_buffer(input, limit);
            let decoder = flate2::bufread::MultiGzDecoder::new(input);
            read_limited(codec, decoder, &mut out, limit)?;
            Ok(out)
        }
        Compression::Snappy => snappy_decompress(input, limit),
        Compression::Lz4 => lz4_decompress(input, limit),
        Compression::Zstd => {
            let wrap = |source| CompressionError::Corrupt { codec, source };
            let mut out = output_buffer(input, limit);
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(wrap)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(wrap)?;
            read_limited(codec, decoder, &mut out, limit)?;
            Ok(out)
        }
    }
}

/// Compresses `input` as Kafka's Java producer does, so that every Kafka client can read it.
///
/// gzip at zlib's default level 6, snappy in xerial framing with 32 KiB blocks, LZ4 frames
/// with 64 KiB independent blocks and no checksums, zstd at level 3; `None` copies.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let wrap = |source: io::Error| CompressionError::Corrupt { codec, source };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let out = Vec::with_capacity(input.len() / 2 + 64);
            let mut encoder =
                flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(input).map_err(wrap)?;
            encoder.finish().map_err(wrap)
        }
        Compression::Snappy => snappy_compress(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false)
                .content_size(None);
            let out = Vec::with_capacity(input.len() / 2 + 64);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            encoder.write_all(input).map_err(wrap)?;
            encoder
                .finish()
                .map_err(|error| wrap(io::Error::other(error)))
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(wrap),
    }
}

/// Java's `Deflater.DEFAULT_COMPRESSION`, which is zlib's level 6.
const GZIP_LEVEL: u32 = 6;
/// Kafka's default `compression.zstd.level` (zstd's own default).
const ZSTD_LEVEL: i32 = 3;
/// The largest zstd window accepted: zstd's default limit, which zstd-jni (Kafka's decoder) also
/// uses. Level 22 producers need all of it. The window is allocated up front but only touched as
/// output is written, and output stops at the limit.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Builds a [`CompressionError::Corrupt`] from a message.
fn corrupt(codec: Compression, message: &'static str) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        source: io::Error::new(io::ErrorKind::InvalidData, message),
    }
}

/// An empty output buffer sized from the real input length, never from a size the input claims.
fn output_buffer(input: &[u8], limit: usize) -> Vec<u8> {
    Vec::with_capacity(input.len().saturating_mul(2).min(limit))
}

/// Appends a streaming decoder's output to `out`, stopping one byte past `limit` in all.
fn read_limited(
    codec: Compression,
    decoder: impl Read,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CompressionError> {
    let room = limit.saturating_sub(out.len());
    let cap = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(out)
        .map_err(|source| CompressionError::Corrupt { codec, source })?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    Ok(())
}

/// snappy-java's stream magic, which starts its 16-byte header.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, then big-endian i32 version and minimum compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's version fields, both 1.
const XERIAL_VERSION: i32 = 1;
/// snappy-java's default block size, used by Kafka's Java producer.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// Reads xerial-framed snappy (possibly several concatenated streams) or one raw snappy block.
fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::new();
    if !input.starts_with(&XERIAL_MAGIC) {
        // librdkafka's format; snappy-java also falls back to this when the magic is absent.
        snappy_block(&mut decoder, input, &mut out, limit)?;
        return Ok(out);
    }
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with(&XERIAL_MAGIC) {
            // A stream header, at the start or where snappy-java streams were concatenated.
            // The version fields are not checked: every version so far reads the same.
            rest = rest
                .get(XERIAL_HEADER_LEN..)
                .ok_or_else(|| corrupt(codec, "truncated xerial header"))?;
            continue;
        }
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(codec, "truncated xerial block length"))?;
        let length = usize::try_from(i32::from_be_bytes(*length))
            .map_err(|_| corrupt(codec, "negative xerial block length"))?;
        let (block, tail) = tail
            .split_at_checked(length)
            .ok_or_else(|| corrupt(codec, "truncated xerial block"))?;
        snappy_block(&mut decoder, block, &mut out, limit)?;
        rest = tail;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its claimed length against the limit first.
fn snappy_block(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let wrap = |error: snap::Error| CompressionError::Corrupt {
        codec,
        source: io::Error::new(io::ErrorKind::InvalidData, error),
    };
    let claimed = snap::raw::decompress_len(block).map_err(wrap)?;
    if claimed > limit.saturating_sub(out.len()) {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let written = decoder.decompress(block, &mut out[start..]).map_err(wrap)?;
    out.truncate(start + written);
    Ok(())
}

/// Writes snappy-java's stream: the header, then one length-prefixed raw block per 32 KiB.
fn snappy_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0; snap::raw::max_compress_len(XERIAL_BLOCK_SIZE)];
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    for chunk in input.chunks(XERIAL_BLOCK_SIZE) {
        let written =
            encoder
                .compress(chunk, &mut block)
                .map_err(|error| CompressionError::Corrupt {
                    codec,
                    source: io::Error::other(error),
                })?;
        let length = i32::try_from(written).map_err(|_| corrupt(codec, "snappy block too long"))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&block[..written]);
    }
    Ok(out)
}

/// The LZ4 frame magic number (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184D_2204;
/// FLG bit: a dictionary id follows the block descriptor.
const LZ4_FLG_DICT_ID: u8 = 0x01;
/// FLG bit: a content checksum follows the end mark.
const LZ4_FLG_CONTENT_CHECKSUM: u8 = 0x04;
/// FLG bit: the uncompressed content size follows the block descriptor.
const LZ4_FLG_CONTENT_SIZE: u8 = 0x08;
/// FLG bit: each block is followed by its checksum.
const LZ4_FLG_BLOCK_CHECKSUM: u8 = 0x10;
/// Block length bit marking a block stored uncompressed.
const LZ4_BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;

/// Reads one or more LZ4 frames that must cover `input` exactly.
fn lz4_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Lz4;
    let mut out = output_buffer(input, limit);
    let mut rest = input;
    while !rest.is_empty() {
        let tail = skip_lz4_frame(rest).map_err(|message| corrupt(codec, message))?;
        let frame = &rest[..rest.len() - tail.len()];
        // One decoder per frame: lz4_flex's decoder stops at each frame's end, and when reused
        // for a frame with a smaller block size it trips its own debug assertions.
        read_limited(
            codec,
            lz4_flex::frame::FrameDecoder::new(frame),
            &mut out,
            limit,
        )?;
        rest = tail;
    }
    Ok(out)
}

/// Skips the LZ4 frame at the start of `input` by walking its framing; returns what follows.
///
/// lz4_flex's decoder treats input that ends between blocks as a clean end, so a frame cut
/// short (no end mark) would silently decode to a prefix; Kafka's reader rejects it. Only the
/// structure is checked here: the decoder then checks the header checksum, flags, block sizes
/// and checksums.
fn skip_lz4_frame(input: &[u8]) -> Result<&[u8], &'static str> {
    let (magic, tail) = input
        .split_first_chunk::<4>()
        .ok_or("truncated LZ4 magic")?;
    if u32::from_le_bytes(*magic) != LZ4_MAGIC {
        return Err("not an LZ4 frame (bad magic number)");
    }
    let (&[flg, _bd], tail) = tail
        .split_first_chunk::<2>()
        .ok_or("truncated LZ4 frame descriptor")?;
    let mut optional = 1; // the header checksum byte
    if flg & LZ4_FLG_CONTENT_SIZE != 0 {
        optional += 8;
    }
    if flg & LZ4_FLG_DICT_ID != 0 {
        optional += 4;
    }
    let mut rest = tail
        .get(optional..)
        .ok_or("truncated LZ4 frame descriptor")?;
    let block_checksum = if flg & LZ4_FLG_BLOCK_CHECKSUM != 0 {
        4
    } else {
        0
    };
    loop {
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("LZ4 frame ends without an end mark")?;
        let length = u32::from_le_bytes(*length);
        if length == 0 {
            rest = tail;
            break;
        }
        let stored =
            usize::try_from(length & !LZ4_BLOCK_UNCOMPRESSED).map_err(|_| "LZ4 block too long")?;
        rest = stored
            .checked_add(block_checksum)
            .and_then(|skip| tail.get(skip..))
            .ok_or("truncated LZ4 block")?;
    }
    if flg & LZ4_FLG_CONTENT_CHECKSUM != 0 {
        rest = rest.get(4..).ok_or("truncated LZ4 content checksum")?;
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const COMPRESSED: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Semi-random bytes: runs and repeats from a small alphabet, compressible but not trivially.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let r = next();
            if r % 4 == 0 && out.len() > 64 {
                let back = (r >> 8) as usize % 64 + 1;
                let run = (r >> 16) as usize % 32 + 4;
                for _ in 0..run {
                    out.push(out[out.len() - back]);
                }
            } else {
                out.push(b'a' + (r >> 24) as u8 % 26);
            }
        }
        out.truncate(len);
        out
    }

    fn is_corrupt(result: Result<Vec<u8>, CompressionError>, codec: Compression) -> bool {
        matches!(result, Err(CompressionError::Corrupt { codec: c, .. }) if c == codec)
    }

    fn is_too_large(
        result: Result<Vec<u8>, CompressionError>,
        codec: Compression,
        limit: usize,
    ) -> bool {
        matches!(result, Err(CompressionError::TooLarge { codec: c, limit: l }) if c == codec && l == limit)
    }

    #[test]
    fn round_trips_every_codec() {
        let inputs = [
            Vec::new(),
            b"hello, kafka".to_vec(),
            sample(300 * 1024, 7),
            vec![0; 200_000],
        ];
        for codec in ALL {
            for input in &inputs {
                let compressed = compress(codec, input).expect("compress");
                // The limit is exactly the output size: allowed.
                let output = decompress(codec, &compressed, input.len()).expect("decompress");
                assert!(
                    output == *input,
                    "{codec} round trip of {} bytes",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn limit_is_enforced_for_every_codec() {
        let input = sample(100_000, 3);
        for codec in ALL {
            let compressed = compress(codec, &input).expect("compress");
            let limit = input.len() - 1;
            assert!(
                is_too_large(decompress(codec, &compressed, limit), codec, limit),
                "{codec}"
            );
            assert!(
                is_too_large(decompress(codec, &compressed, 0), codec, 0),
                "{codec}"
            );
        }
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0; 16 << 20];
        for codec in COMPRESSED {
            let compressed = compress(codec, &zeros).expect("compress");
            assert!(
                compressed.len() < zeros.len() / 10,
                "{codec} compresses zeros"
            );
            assert!(
                is_too_large(decompress(codec, &compressed, 64 * 1024), codec, 64 * 1024),
                "{codec}"
            );
        }
    }

    #[test]
    fn garbage_is_corrupt_for_every_codec() {
        let noise: Vec<u8> = sample(5000, 11)
            .iter()
            .map(|b| b.wrapping_mul(151))
            .collect();
        for codec in COMPRESSED {
            let valid = compress(codec, &sample(100_000, 5)).expect("compress");
            let mut trailing = valid.clone();
            trailing.extend_from_slice(b"trailing garbage");
            let cases: [&[u8]; 6] = [
                b"",
                b"not compressed at all, just text",
                &noise,
                &valid[..valid.len() - 1],
                &valid[..7],
                &trailing,
            ];
            for (i, case) in cases.iter().enumerate() {
                let result = decompress(codec, case, 1 << 20);
                assert!(is_corrupt(result, codec), "{codec} case {i}");
            }
        }
    }

    #[test]
    fn concatenated_streams_are_read_whole() {
        let (a, b) = (sample(70_000, 1), sample(50_000, 2));
        for codec in COMPRESSED {
            let mut joined = compress(codec, &a).expect("compress");
            joined.extend(compress(codec, &b).expect("compress"));
            let output = decompress(codec, &joined, 1 << 20).expect("decompress");
            assert!(output == [a.as_slice(), b.as_slice()].concat(), "{codec}");
        }
    }

    #[test]
    fn snappy_accepts_raw_blocks() {
        for input in [b"x".to_vec(), sample(300 * 1024, 9)] {
            let raw = snap::raw::Encoder::new()
                .compress_vec(&input)
                .expect("snap");
            assert_ne!(raw[..], XERIAL_MAGIC[..]);
            assert_eq!(
                decompress(Compression::Snappy, &raw, input.len()).expect("raw"),
                input
            );
        }
    }

    #[test]
    fn snappy_claimed_lengths_are_checked_before_allocating() {
        // A raw block whose header claims 2^32 - 1 bytes.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(is_too_large(
            decompress(Compression::Snappy, &raw, 1 << 20),
            Compression::Snappy,
            1 << 20
        ));
        let mut xerial = compress(Compression::Snappy, b"").expect("compress");
        xerial.extend_from_slice(&(raw.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert!(is_too_large(
            decompress(Compression::Snappy, &xerial, 1 << 20),
            Compression::Snappy,
            1 << 20
        ));
        // A negative block length.
        let mut negative = compress(Compression::Snappy, b"").expect("compress");
        negative.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(is_corrupt(
            decompress(Compression::Snappy, &negative, 1 << 20),
            Compression::Snappy
        ));
    }

    #[test]
    fn snappy_writes_xerial_framing_with_32k_blocks() {
        let input = sample(300 * 1024, 4);
        let out = compress(Compression::Snappy, &input).expect("compress");
        assert_eq!(out[..8], XERIAL_MAGIC);
        assert_eq!(out[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
        let mut rest = &out[16..];
        let mut blocks = 0;
        while !rest.is_empty() {
            let length = i32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let block = &rest[4..4 + length];
            assert!(snap::raw::decompress_len(block).expect("block") <= XERIAL_BLOCK_SIZE);
            rest = &rest[4 + length..];
            blocks += 1;
        }
        assert_eq!(blocks, input.len().div_ceil(XERIAL_BLOCK_SIZE));
    }

    #[test]
    fn lz4_writes_kafkas_frame_header() {
        let out = compress(Compression::Lz4, &sample(200_000, 8)).expect("compress");
        // Magic, FLG (version 1, independent blocks, nothing optional), BD (64 KiB), checksum.
        assert_eq!(out[..7], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
        assert_eq!(out[out.len() - 4..], [0, 0, 0, 0]);
    }

    #[test]
    fn lz4_reads_other_frame_options() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let input = sample(600_000, 12);
        let options = [
            FrameInfo::new().content_size(Some(input.len() as u64)),
            FrameInfo::new()
                .block_checksums(true)
                .content_checksum(true),
            FrameInfo::new()
                .block_size(BlockSize::Max4MB)
                .content_size(Some(input.len() as u64))
                .block_checksums(true),
            FrameInfo::new()
                .block_size(BlockSize::Max256KB)
                .block_mode(BlockMode::Linked),
        ];
        for (i, info) in options.into_iter().enumerate() {
            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(&input).expect("write");
            let frame = encoder.finish().expect("finish");
            assert_eq!(
                decompress(Compression::Lz4, &frame, input.len()).expect("decompress"),
                input,
                "option {i}"
            );
            assert!(
                is_corrupt(
                    decompress(Compression::Lz4, &frame[..frame.len() - 1], 1 << 20),
                    Compression::Lz4
                ),
                "option {i}"
            );
        }
    }

    #[test]
    fn lz4_frame_without_end_mark_is_corrupt() {
        let out = compress(Compression::Lz4, &sample(200_000, 13)).expect("compress");
        // Cut exactly after the last block, dropping only the 4-byte end mark.
        let cut = &out[..out.len() - 4];
        assert!(is_corrupt(
            decompress(Compression::Lz4, cut, 1 << 20),
            Compression::Lz4
        ));
    }

    #[test]
    fn lz4_reads_many_frames_with_mixed_block_sizes() {
        use lz4_flex::frame::{BlockSize, FrameEncoder, FrameInfo};
        let info = FrameInfo::new().block_size(BlockSize::Max4MB);
        let empty = FrameEncoder::with_frame_info(info, Vec::new())
            .finish()
            .expect("finish");
        let mut input = empty.repeat(20_000);
        input.extend(compress(Compression::Lz4, b"last").expect("compress"));
        assert_eq!(
            decompress(Compression::Lz4, &input, 4).expect("decompress"),
            b"last"
        );
    }

    #[test]
    fn codec_ids_and_names_round_trip() {
        for codec in ALL {
            assert_eq!(Compression::from_attributes(codec.id()).expect("id"), codec);
            // Other attribute bits (timestamp type, transactional, control, ...) are ignored.
            assert_eq!(
                Compression::from_attributes(codec.id() | 0x78 | i16::MIN).expect("id"),
                codec
            );
            assert_eq!(codec.name().parse::<Compression>().expect("name"), codec);
            assert_eq!(codec.to_string(), codec.name());
        }
        for id in 5..=7 {
            assert!(
                matches!(Compression::from_attributes(id | 0x10), Err(CompressionError::UnknownCodec(i)) if i == id)
            );
        }
        for name in ["uncompressed", "producer", "GZIP", "", "lz4 "] {
            assert!(
                matches!(name.parse::<Compression>(), Err(CompressionError::UnknownName(n)) if n == name)
            );
        }
    }

    #[test]
    fn errors_name_the_codec() {
        assert_eq!(
            CompressionError::UnknownCodec(6).to_string(),
            "unknown compression codec id 6"
        );
        let error = decompress(Compression::Zstd, b"nonsense", 100).expect_err("corrupt");
        assert_eq!(error.to_string(), "the zstd data is corrupt");
        assert!(std::error::Error::source(&error).is_some());
        let error = decompress(Compression::None, b"nonsense", 3).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "the none data decompresses to more than 3 bytes"
        );
    }

    /// Random bytes (incompressible) or seeded semi-random text up to several blocks long.
    fn any_input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            (0usize..150_000, any::<u64>()).prop_map(|(len, seed)| sample(len, seed)),
        ]
    }

    proptest! {
        #[test]
        fn decompress_inverts_compress(input in any_input()) {
            for codec in ALL {
                let compressed = compress(codec, &input).expect("compress");
                let output = decompress(codec, &compressed, input.len()).expect("decompress");
                prop_assert!(output == input, "{}", codec);
            }
        }

        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048), limit in 0usize..100_000) {
            for codec in ALL {
                if let Ok(output) = decompress(codec, &input, limit) {
                    prop_assert!(output.len() <= limit);
                }
            }
        }

        #[test]
        fn damaged_streams_never_panic(
            input in any_input(),
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            for codec in COMPRESSED {
                let mut compressed = compress(codec, &input).expect("compress");
                for (index, byte) in &damage {
                    let i = index.index(compressed.len());
                    compressed[i] ^= byte | 1;
                }
                let limit = input.len() + 1000;
                if let Ok(output) = decompress(codec, &compressed, limit) {
                    prop_assert!(output.len() <= limit);
                }
            }
        }
    }
}
