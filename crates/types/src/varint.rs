//! Kafka's zig-zag variable-length integers (protobuf style), as used inside v2 records.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The input ended inside the varint.
    #[error("varint runs past the end of the input")]
    Truncated,
    /// More continuation bytes than the type allows.
    #[error("varint is too long")]
    TooLong,
}

/// Reads a zig-zag varint (i32) from the start of `buf`; returns the value and bytes used.
#[inline]
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, used) = read_unsigned(buf, 5)?;
    let raw = raw as u32;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Reads a zig-zag varlong (i64) from the start of `buf`; returns the value and bytes used.
#[inline]
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, used) = read_unsigned(buf, 10)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

#[inline]
fn read_unsigned(buf: &[u8], max_len: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if i >= max_len {
            return Err(VarintError::TooLong);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= max_len {
        Err(VarintError::TooLong)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Appends `value` as a zig-zag varint.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// Appends `value` as a zig-zag varlong.
#[inline]
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// The number of bytes `write_varint(value)` appends.
pub fn varint_len(value: i32) -> usize {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        write_varint(&mut out, -1);
        assert_eq!(out, [0x01]);
        out.clear();
        write_varint(&mut out, 300);
        assert_eq!(out, [0xd8, 0x04]);
        assert_eq!(read_varint(&[0xd8, 0x04]), Ok((300, 2)));
        assert_eq!(read_varint(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0xff; 6]), Err(VarintError::TooLong));
        assert_eq!(read_varlong(&[0xff; 11]), Err(VarintError::TooLong));
    }

    proptest! {
        #[test]
        fn round_trip(a: i32, b: i64) {
            let mut out = Vec::new();
            write_varint(&mut out, a);
            prop_assert_eq!(out.len(), varint_len(a));
            write_varlong(&mut out, b);
            let (ra, used) = read_varint(&out).unwrap();
            prop_assert_eq!(ra, a);
            let (rb, used2) = read_varlong(&out[used..]).unwrap();
            prop_assert_eq!(rb, b);
            prop_assert_eq!(used + used2, out.len());
        }
    }
}
