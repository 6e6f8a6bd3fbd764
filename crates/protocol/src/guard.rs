//! A structural check of request bodies before `kafka-protocol` decodes them.
//!
//! Why: `kafka-protocol` 0.18 decodes an array by calling `Vec::with_capacity(n)` with `n`
//! straight off the wire, so a request of a few bytes that claims `i32::MAX` elements makes the
//! process abort on a failed allocation, which no `catch_unwind` can stop (see
//! `DEPENDENCIES.md`). [`check_request`] walks the body with a schema of each request Strom
//! decodes (`guard/schemas.rs`) and refuses any array count or string/bytes length that cannot
//! fit in the bytes that remain, a null where the decoder wants a value, and truncation.
//!
//! The walk reads exactly the bytes the decoder will read, in the same order: in particular a
//! known tagged field is read by its type, as `kafka-protocol` does, not skipped by its declared
//! size (a lying size would otherwise shift the decoder onto bytes the guard never checked).
//! What passes has every count bounded by the body size, so decoding allocates at most a
//! bounded multiple of the frame (the tests measure it).

mod schemas;

use schemas::{Field, Kind, Struct};

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
    /// A count or length that is negative or cannot fit in the rest of the body.
    #[error("field {field} claims {claimed} but only {remaining} bytes remain")]
    ImpossibleLength {
        /// The field.
        field: &'static str,
        /// The claimed count or length.
        claimed: i64,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// Null in a field that cannot be null.
    #[error("field {field} is null but must not be")]
    UnexpectedNull {
        /// The field.
        field: &'static str,
    },
    /// A tagged field that does not exist at this version (the decoder refuses it too).
    #[error("tag {tag} ({field}) is not valid at this version")]
    InvalidTag {
        /// The tagged field.
        field: &'static str,
        /// Its tag.
        tag: u32,
    },
    /// An unsigned varint longer than five bytes.
    #[error("field {field} has an overlong varint")]
    BadVarint {
        /// The field.
        field: &'static str,
    },
}

/// The API keys [`check_request`] knows, i.e. the ones the broker may decode.
pub fn guarded_api_keys() -> &'static [i16] {
    &schemas::KEYS
}

/// The versions of `api_key` the guard (and so the broker) can decode, if any.
pub fn supported_versions(api_key: i16) -> Option<(i16, i16)> {
    schemas::message(api_key).map(|m| (m.min_version, m.max_version))
}

/// Checks that a request body (the bytes after the request header) of `api_key` at `version`
/// is structurally sound: every array count and string/bytes length fits in the bytes that
/// remain, so `kafka-protocol` can decode it without a huge allocation. Trailing bytes are
/// not checked (the decoder ignores them too).
pub fn check_request(api_key: i16, version: i16, body: &[u8]) -> Result<(), GuardError> {
    walk(api_key, version, body).map(|_| ())
}

/// Walks the body; returns how many bytes the decoder will consume.
fn walk(api_key: i16, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let message = schemas::message(api_key).ok_or(GuardError::UnknownApi(api_key))?;
    if !(message.min_version..=message.max_version).contains(&version) {
        return Err(GuardError::UnsupportedVersion { api_key, version });
    }
    let mut walker = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= message.flexible_from,
    };
    walker.walk_struct(message.body, "request")?;
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

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], GuardError> {
        if self.remaining() < n {
            return Err(GuardError::Truncated { field });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    /// A big-endian signed integer of `width` bytes (2 or 4).
    fn int(&mut self, width: usize, field: &'static str) -> Result<i64, GuardError> {
        let bytes = self.take(width, field)?;
        let raw = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let shift = 64 - 8 * width as u32;
        Ok(((raw << shift) as i64) >> shift)
    }

    /// An unsigned varint, read as `kafka-protocol` reads it (low 32 bits), but refusing a
    /// fifth byte with the continuation bit (which the decoder would silently stop at).
    fn uvarint(&mut self, field: &'static str) -> Result<u32, GuardError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, field)?[0];
            value |= u32::from(b & 0x7f).wrapping_shl(7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(GuardError::BadVarint { field })
    }

    /// A length or count prefix: `None` for null, else the number of items or bytes.
    fn length(
        &mut self,
        field: &'static str,
        width: usize,
        nullable: bool,
    ) -> Result<Option<u64>, GuardError> {
        let n = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else {
            self.int(width, field)?
        };
        match n {
            -1 if nullable => Ok(None),
            -1 => Err(GuardError::UnexpectedNull { field }),
            n if n < 0 => Err(GuardError::ImpossibleLength {
                field,
                claimed: n,
                remaining: self.remaining(),
            }),
            n => Ok(Some(n as u64)),
        }
    }

    /// Refuses `count` items of at least `each` bytes if they cannot fit in what remains.
    fn fits(&self, field: &'static str, count: u64, each: u64) -> Result<(), GuardError> {
        if count.saturating_mul(each.max(1)) > self.remaining() as u64 {
            return Err(GuardError::ImpossibleLength {
                field,
                claimed: count as i64,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn walk_struct(&mut self, s: &Struct, name: &'static str) -> Result<(), GuardError> {
        for f in s.0 {
            if f.tag.is_none() && f.present(self.version) {
                self.value(&f.kind, f.name)?;
            }
        }
        if self.flexible {
            self.tagged_fields(s.0, name)?;
        }
        Ok(())
    }

    /// A tagged section. `kafka-protocol` decodes a known tag's value from the stream
    /// regardless of its declared size, so the walk does the same; unknown tags are skipped
    /// by size.
    fn tagged_fields(&mut self, fields: &[Field], name: &'static str) -> Result<(), GuardError> {
        let count = self.uvarint(name)?;
        self.fits(name, u64::from(count), 2)?;
        for _ in 0..count {
            let tag = self.uvarint(name)?;
            let size = self.uvarint(name)?;
            match fields.iter().find(|f| f.tag == Some(tag)) {
                Some(f) if f.present(self.version) => self.value(&f.kind, f.name)?,
                Some(f) => return Err(GuardError::InvalidTag { field: f.name, tag }),
                None => {
                    self.fits(name, u64::from(size), 1)?;
                    self.take(size as usize, name)?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, kind: &Kind, field: &'static str) -> Result<(), GuardError> {
        match kind {
            Kind::Fixed(n) => self.take(*n, field).map(|_| ()),
            Kind::Str { nullable } | Kind::Bytes { nullable } => {
                let width = if matches!(kind, Kind::Str { .. }) {
                    2
                } else {
                    4
                };
                if let Some(len) = self.length(field, width, *nullable)? {
                    self.fits(field, len, 1)?;
                    self.take(len as usize, field)?;
                }
                Ok(())
            }
            Kind::Array { of, nullable } => {
                let Some(count) = self.length(field, 4, *nullable)? else {
                    return Ok(());
                };
                self.fits(field, count, self.min_size(of))?;
                for _ in 0..count {
                    self.value(of, field)?;
                }
                Ok(())
            }
            Kind::Struct(s) => self.walk_struct(s, field),
            Kind::OptionStruct(s) => {
                if self.take(1, field)?[0] == 1 {
                    self.walk_struct(s, field)?;
                }
                Ok(())
            }
        }
    }

    /// The fewest bytes a value of `kind` takes at this version.
    fn min_size(&self, kind: &Kind) -> u64 {
        match kind {
            Kind::Fixed(n) => *n as u64,
            // The marker; a null struct is nothing more.
            Kind::OptionStruct(_) => 1,
            _ if self.flexible && !matches!(kind, Kind::Struct(_)) => 1,
            Kind::Str { .. } => 2,
            Kind::Bytes { .. } | Kind::Array { .. } => 4,
            Kind::Struct(s) => {
                let fields: u64 =
                    s.0.iter()
                        .filter(|f| f.tag.is_none() && f.present(self.version))
                        .map(|f| self.min_size(&f.kind))
                        .sum();
                fields + u64::from(self.flexible)
            }
        }
    }
}

#[cfg(test)]
mod tests;
