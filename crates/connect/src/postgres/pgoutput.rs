//! A decoder of the `pgoutput` logical replication messages (protocol version 1), as
//! `pg_logical_slot_peek_binary_changes` returns them, one message per row: Begin, Commit,
//! Origin, Relation, Type, Insert, Update, Delete, Truncate (and logical decoding
//! Messages, which are passed over). It is written by hand because no maintained crate
//! decodes pgoutput over tokio-postgres (the replication crates need a fork of it with the
//! streaming replication protocol); the format is small and documented in PostgreSQL's
//! "Logical Replication Message Formats".

use crate::ConnectError;

/// A column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Whether it is part of the replica identity (the key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// A TOASTed value the change did not touch (not sent).
    Unchanged,
    /// The value in its type's text output.
    Text(String),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        /// The LSN of the transaction's commit record.
        final_lsn: u64,
        /// Microseconds since 2000-01-01.
        timestamp: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        /// The end of the commit record: where decoding resumes after it.
        end_lsn: u64,
        timestamp: i64,
    },
    Origin,
    Relation {
        id: u32,
        namespace: String,
        name: String,
        /// `d` default, `n` nothing, `f` full, `i` index.
        identity: u8,
        columns: Vec<RelationColumn>,
    },
    Type,
    Insert {
        relation: u32,
        new: Vec<Datum>,
    },
    Update {
        relation: u32,
        /// The old key (`K`) or whole old row (`O`), when sent.
        old: Option<(u8, Vec<Datum>)>,
        new: Vec<Datum>,
    },
    Delete {
        relation: u32,
        old: (u8, Vec<Datum>),
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

fn short() -> ConnectError {
    ConnectError::Data("a pgoutput message ends early".into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConnectError> {
        let end = self.at.checked_add(n).ok_or_else(short)?;
        let s = self.buf.get(self.at..end).ok_or_else(short)?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ConnectError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, ConnectError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ConnectError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> Result<u32, ConnectError> {
        Ok(self.i32()? as u32)
    }

    fn i64(&mut self) -> Result<i64, ConnectError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, ConnectError> {
        Ok(self.i64()? as u64)
    }

    fn cstring(&mut self) -> Result<String, ConnectError> {
        let rest = self.buf.get(self.at..).ok_or_else(short)?;
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(short)?;
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.at += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Datum>, ConnectError> {
        let n = self.i16()?;
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = usize::try_from(self.i32()?).map_err(|_| short())?;
                    Datum::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                }
                other => {
                    return Err(ConnectError::Data(format!(
                        "a pgoutput tuple has a column of kind {:?}",
                        other as char
                    )))
                }
            });
        }
        Ok(out)
    }
}

/// Decodes one message.
pub fn decode(buf: &[u8]) -> Result<Message, ConnectError> {
    let mut r = Reader { buf, at: 0 };
    Ok(match r.u8()? {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            timestamp: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                timestamp: r.i64()?,
            }
        }
        b'O' => Message::Origin,
        b'Y' => Message::Type,
        b'M' => Message::Other,
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstring()?;
            let name = r.cstring()?;
            let identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.cstring()?,
                    type_oid: r.u32()?,
                    typmod: r.i32()?,
                });
            }
            Message::Relation {
                id,
                namespace,
                name,
                identity,
                columns,
            }
        }
        b'I' => {
            let relation = r.u32()?;
            expect(r.u8()?, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, r.tuple()?));
                kind = r.u8()?;
            }
            expect(kind, b'N')?;
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(ConnectError::Data(format!(
                    "a pgoutput delete has tuple kind {:?}",
                    kind as char
                )));
            }
            Message::Delete {
                relation,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(n.clamp(0, 1024) as usize);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        other => {
            return Err(ConnectError::Data(format!(
                "an unknown pgoutput message {:?}",
                other as char
            )))
        }
    })
}

fn expect(got: u8, want: u8) -> Result<(), ConnectError> {
    if got == want {
        Ok(())
    } else {
        Err(ConnectError::Data(format!(
            "a pgoutput message has {:?} where {:?} belongs",
            got as char, want as char
        )))
    }
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_and_truncated_ones_are_refused() {
        let mut relation = vec![b'R', 0, 0, 0, 9];
        relation.extend_from_slice(b"public\0t\0d");
        relation.extend_from_slice(&1i16.to_be_bytes());
        relation.push(1);
        relation.extend_from_slice(b"id\0");
        relation.extend_from_slice(&23u32.to_be_bytes());
        relation.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decode(&relation).unwrap(),
            Message::Relation {
                id: 9,
                namespace: "public".into(),
                name: "t".into(),
                identity: b'd',
                columns: vec![RelationColumn {
                    key: true,
                    name: "id".into(),
                    type_oid: 23,
                    typmod: -1
                }],
            }
        );
        let mut insert = vec![b'I', 0, 0, 0, 9, b'N', 0, 2, b't', 0, 0, 0, 2];
        insert.extend_from_slice(b"42n");
        assert_eq!(
            decode(&insert).unwrap(),
            Message::Insert {
                relation: 9,
                new: vec![Datum::Text("42".into()), Datum::Null]
            }
        );
        assert!(decode(&insert[..insert.len() - 2]).is_err());
        assert!(decode(b"Z").is_err());
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
    }
}
