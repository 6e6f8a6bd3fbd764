//! Request headers, parsed by hand and defensively (the `kafka-protocol` crate's header
//! decoder panics on short input).
//!
//! Header v1: `api_key: i16, api_version: i16, correlation_id: i32, client_id: nullable
//! string (i16 length)`. Header v2 (flexible request versions) adds a tagged-field section.
//! Header v0 (no client id) is only used by ControlledShutdown v0, which Strom does not serve.

use kafka_protocol::messages::ApiKey;

/// A decoded request header and where the body starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API.
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's id, if sent.
    pub client_id: Option<String>,
    /// Bytes of the frame taken by the header.
    pub header_len: usize,
}

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The frame ends inside the header.
    #[error("request header is truncated")]
    Truncated,
    /// The client id length is negative (other than -1).
    #[error("request header has an invalid client id length {0}")]
    InvalidClientId(i16),
    /// A tagged-field section that does not fit the frame.
    #[error("request header has malformed tagged fields")]
    BadTaggedFields,
}

impl RequestHeader {
    /// Reads just api key, version and correlation id: enough to answer an unknown API or
    /// an unsupported version with the right correlation id.
    pub fn peek(frame: &[u8]) -> Result<(i16, i16, i32), HeaderError> {
        if frame.len() < 8 {
            return Err(HeaderError::Truncated);
        }
        Ok((
            i16::from_be_bytes([frame[0], frame[1]]),
            i16::from_be_bytes([frame[2], frame[3]]),
            i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        ))
    }

    /// Parses the header of a request frame. The header version follows from the API and
    /// version (flexible versions use header v2); unknown APIs are parsed as v1.
    pub fn parse(frame: &[u8]) -> Result<RequestHeader, HeaderError> {
        let (api_key, api_version, correlation_id) = RequestHeader::peek(frame)?;
        let header_version = ApiKey::try_from(api_key)
            .map(|k| k.request_header_version(api_version))
            .unwrap_or(1);
        let mut pos = 8;
        let len = frame
            .get(pos..pos + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or(HeaderError::Truncated)?;
        pos += 2;
        let client_id = match len {
            -1 => None,
            n if n < 0 => return Err(HeaderError::InvalidClientId(n)),
            n => {
                let bytes = frame
                    .get(pos..pos + n as usize)
                    .ok_or(HeaderError::Truncated)?;
                pos += n as usize;
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
        };
        if header_version >= 2 {
            pos = skip_tagged_fields(frame, pos).ok_or(HeaderError::BadTaggedFields)?;
        }
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
            header_len: pos,
        })
    }
}

/// Reads an unsigned varint at `pos`; returns the value and the position after it.
pub fn read_unsigned_varint(buf: &[u8], mut pos: usize) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(pos)?;
        pos += 1;
        value |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}

/// Skips a tagged-field section at `pos`; returns the position after it.
pub fn skip_tagged_fields(buf: &[u8], pos: usize) -> Option<usize> {
    let (count, mut pos) = read_unsigned_varint(buf, pos)?;
    for _ in 0..count {
        let (_tag, p) = read_unsigned_varint(buf, pos)?;
        let (size, p) = read_unsigned_varint(buf, p)?;
        pos = p.checked_add(size as usize).filter(|&e| e <= buf.len())?;
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(api_key: i16, version: i16, header_version: i16) -> Vec<u8> {
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("rdkafka")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, header_version).unwrap();
        buf.to_vec()
    }

    #[test]
    fn headers_v1_and_v2_parse_like_kafka_encodes_them() {
        // Metadata v4 uses header v1; Metadata v12 (flexible) uses header v2.
        for (version, header_version) in [(4, 1), (12, 2)] {
            let mut frame = encoded(3, version, header_version);
            let header_len = frame.len();
            frame.extend_from_slice(&[9, 9, 9]);
            let h = RequestHeader::parse(&frame).unwrap();
            assert_eq!(
                (h.api_key, h.api_version, h.correlation_id),
                (3, version, 77)
            );
            assert_eq!(h.client_id.as_deref(), Some("rdkafka"));
            assert_eq!(h.header_len, header_len);
        }
    }

    #[test]
    fn short_and_malformed_headers_are_errors_not_panics() {
        let frame = encoded(3, 12, 2);
        for cut in 0..frame.len() {
            assert!(RequestHeader::parse(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = frame.clone();
        bad[8..10].copy_from_slice(&(-5i16).to_be_bytes());
        assert_eq!(
            RequestHeader::parse(&bad),
            Err(HeaderError::InvalidClientId(-5))
        );
        let mut bad = frame;
        let n = bad.len();
        bad[n - 1] = 0x80; // a tag count varint that never ends
        assert_eq!(
            RequestHeader::parse(&bad),
            Err(HeaderError::BadTaggedFields)
        );
        // Unknown API keys parse as header v1.
        let frame = encoded(999, 0, 1);
        assert_eq!(RequestHeader::parse(&frame).unwrap().api_key, 999);
    }
}
