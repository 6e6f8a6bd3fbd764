//! A structural check of request bodies before `kafka-protocol` decodes them.
//!
//! Why: `kafka-protocol` 0.18 decodes an array by calling `Vec::with_capacity(n)` with `n`
//! straight off the wire, so a request of a few bytes that claims `i32::MAX` elements makes
//! the process abort on a failed allocation, which no `catch_unwind` can stop (see
//! `DEPENDENCIES.md`). [`check_request`] walks the body with a small schema of each request
//! Strom serves (field types and the versions they exist in, from Kafka's message specs) and
//! refuses any array count or string/bytes length that cannot fit in the bytes that remain.
//! What passes has counts bounded by the frame size, so decoding allocates at most a small
//! multiple of the frame.
//!
//! Tagged fields are skipped by their declared sizes: none of the requests served carries an
//! array inside a known tagged field (checked when the schemas were written).

mod schemas;

use schemas::{Field, Kind, Message};

/// Why a request body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No schema for this API: the caller must not decode it.
    #[error("API key {0} is not served")]
    UnknownApi(i16),
    /// A version outside what Strom decodes for this API.
    #[error("version {version} of API key {api_key} is not supported")]
    UnsupportedVersion {
        /// The API.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
    /// The body ends inside a field.
    #[error("request body ends inside field {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A count or length that cannot fit in the rest of the body.
    #[error("field {field} claims {claimed} but only {remaining} bytes remain")]
    ImpossibleLength {
        /// The field.
        field: &'static str,
        /// The claimed count or length.
        claimed: i64,
        /// Bytes left in the body.
        remaining: usize,
    },
}

/// The API keys [`check_request`] knows, i.e. the ones the broker may decode.
pub fn guarded_api_keys() -> &'static [i16] {
    schemas::KEYS
}

/// The versions of `api_key` the guard (and so the broker) can decode, if any.
pub fn supported_versions(api_key: i16) -> Option<(i16, i16)> {
    schemas::message(api_key).map(|m| (m.min_version, m.max_version))
}

/// Checks that a request body (the bytes after the request header) of `api_key` at `version`
/// is structurally sound: every array count and string/bytes length fits in what remains.
pub fn check_request(api_key: i16, version: i16, body: &[u8]) -> Result<(), GuardError> {
    walk(api_key, version, body).map(|_| ())
}

/// Walks the body; returns how many bytes the schema accounts for.
fn walk(api_key: i16, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let message: &Message = schemas::message(api_key).ok_or(GuardError::UnknownApi(api_key))?;
    if version < message.min_version || version > message.max_version {
        return Err(GuardError::UnsupportedVersion { api_key, version });
    }
    let mut walker = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= message.flexible_from,
    };
    walker.fields(message.fields, "request")?;
    Ok(walker.pos)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<(), GuardError> {
        if self.remaining() < n {
            return Err(GuardError::Truncated { field });
        }
        self.pos += n;
        Ok(())
    }

    fn int(&mut self, n: usize, field: &'static str) -> Result<i64, GuardError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(GuardError::Truncated { field })?;
        self.pos += n;
        Ok(bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b)))
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u32, GuardError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(GuardError::Truncated { field })?;
            self.pos += 1;
            value |= u32::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or(GuardError::Truncated { field })?;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GuardError::Truncated { field })
    }

    /// A length or count: `None` for null, else the number of items.
    fn length(&mut self, field: &'static str, int_width: usize) -> Result<Option<u64>, GuardError> {
        if self.flexible {
            let n = self.uvarint(field)?;
            Ok(n.checked_sub(1).map(u64::from))
        } else {
            let raw = self.int(int_width, field)?;
            // Sign-extend the big-endian value.
            let shift = 64 - 8 * int_width as u32;
            let n = (raw << shift) >> shift;
            match n {
                -1 => Ok(None),
                n if n < 0 => Err(GuardError::ImpossibleLength {
                    field,
                    claimed: n,
                    remaining: self.remaining(),
                }),
                n => Ok(Some(n as u64)),
            }
        }
    }

    fn fits(&self, field: &'static str, claimed: u64, each: u64) -> Result<(), GuardError> {
        if claimed.saturating_mul(each) > self.remaining() as u64 {
            return Err(GuardError::ImpossibleLength {
                field,
                claimed: claimed as i64,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn tagged_fields(&mut self, field: &'static str) -> Result<(), GuardError> {
        let count = self.uvarint(field)?;
        self.fits(field, u64::from(count), 2)?;
        for _ in 0..count {
            self.uvarint(field)?;
            let size = self.uvarint(field)? as usize;
            self.take(size, field)?;
        }
        Ok(())
    }

    fn fields(&mut self, fields: &[Field], name: &'static str) -> Result<(), GuardError> {
        for f in fields {
            if self.version >= f.min && self.version <= f.max {
                self.value(&f.kind, f.name)?;
            }
        }
        if self.flexible {
            self.tagged_fields(name)?;
        }
        Ok(())
    }

    fn value(&mut self, kind: &Kind, field: &'static str) -> Result<(), GuardError> {
        match kind {
            Kind::Fixed(n) => self.take(*n, field),
            Kind::Str | Kind::Bytes => {
                let width = if matches!(kind, Kind::Str) { 2 } else { 4 };
                if let Some(len) = self.length(field, width)? {
                    self.fits(field, len, 1)?;
                    self.take(len as usize, field)?;
                }
                Ok(())
            }
            Kind::Array(inner) => {
                let Some(count) = self.length(field, 4)? else {
                    return Ok(());
                };
                let each = match inner {
                    Kind::Fixed(n) => *n as u64,
                    _ => 1,
                };
                self.fits(field, count, each)?;
                for _ in 0..count {
                    self.value(inner, field)?;
                }
                Ok(())
            }
            Kind::Struct(fields) => self.fields(fields, field),
        }
    }
}

#[cfg(test)]
mod tests;
