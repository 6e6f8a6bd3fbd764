//! Serdes: how a key or value type becomes bytes and back (Kafka's `Serde<T>`), and the
//! built-in ones under Kafka's encodings: raw bytes, UTF-8 strings, big-endian `i32`/`i64`
//! (Kafka's `IntegerSerde`, `LongSerde`), JSON through serde, `Void` (always null), and
//! [`Nullable`], which gives any serde Kafka's null-in, null-out reading as an `Option`.
//!
//! A record's key or value may be absent (null) on the wire. A serde sees that as `None`:
//! the plain serdes refuse it with [`SerdeError::Null`] (their type has no null), and
//! `Nullable<S>` reads it as `None`. Serdes are shared by every record of a stream, so they
//! are `Send + Sync` and take `&self`.

use std::marker::PhantomData;

use bytes::Bytes;

/// Why a key or value could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SerdeError {
    /// The bytes were null and the type has no null (wrap the serde in [`Nullable`]).
    #[error("a null cannot be read as {type_name} (use Nullable for optional data)")]
    Null {
        /// The type asked for.
        type_name: &'static str,
    },
    /// Data that is not null was given to a serde of nulls only.
    #[error("{len} bytes cannot be read as Void (only null can)")]
    NotNull {
        /// How many bytes there were.
        len: usize,
    },
    /// A fixed-size number had the wrong number of bytes.
    #[error("{type_name} takes exactly {expected} bytes, got {actual}")]
    Size {
        /// The type asked for.
        type_name: &'static str,
        /// Its encoded size.
        expected: usize,
        /// The size received.
        actual: usize,
    },
    /// The bytes were not UTF-8.
    #[error("the data is not UTF-8")]
    Utf8(#[from] std::str::Utf8Error),
    /// JSON that did not parse or did not fit the type, or a value JSON cannot represent.
    #[error("JSON serde failed")]
    Json(#[from] serde_json::Error),
    /// A user serde's own failure.
    #[error("the serde failed")]
    Custom(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Writes and reads one type (Kafka's `Serde<T>`: a serializer and a deserializer in one).
/// `topic` is the topic the data goes to or came from, as in Kafka's serializers.
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `data`; `None` writes a null.
    fn serialize(&self, topic: &str, data: &T) -> Result<Option<Bytes>, SerdeError>;
    /// The value of `data`; `None` is a null on the wire.
    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// The data of a non-null type, or [`SerdeError::Null`].
fn present<T>(data: Option<&[u8]>) -> Result<&[u8], SerdeError> {
    data.ok_or(SerdeError::Null {
        type_name: std::any::type_name::<T>(),
    })
}

/// Raw bytes, unchanged (Kafka's `BytesSerde`/`ByteArraySerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, _topic: &str, data: &Bytes) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(data.clone()))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(present::<Bytes>(data)?))
    }
}

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, _topic: &str, data: &Vec<u8>) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(data)))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(present::<Vec<u8>>(data)?.to_vec())
    }
}

/// UTF-8 text (Kafka's `StringSerde` with its default encoding).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, _topic: &str, data: &String) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(data.as_bytes())))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<String, SerdeError> {
        Ok(std::str::from_utf8(present::<String>(data)?)?.to_string())
    }
}

/// A 4-byte big-endian `i32` (Kafka's `IntegerSerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I32Serde;

impl Serde<i32> for I32Serde {
    fn serialize(&self, _topic: &str, data: &i32) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&data.to_be_bytes())))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<i32, SerdeError> {
        let data = present::<i32>(data)?;
        let bytes: [u8; 4] = data.try_into().map_err(|_| SerdeError::Size {
            type_name: "i32",
            expected: 4,
            actual: data.len(),
        })?;
        Ok(i32::from_be_bytes(bytes))
    }
}

/// An 8-byte big-endian `i64` (Kafka's `LongSerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, _topic: &str, data: &i64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&data.to_be_bytes())))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<i64, SerdeError> {
        let data = present::<i64>(data)?;
        let bytes: [u8; 8] = data.try_into().map_err(|_| SerdeError::Size {
            type_name: "i64",
            expected: 8,
            actual: data.len(),
        })?;
        Ok(i64::from_be_bytes(bytes))
    }
}

/// Always null (Kafka's `VoidSerde`): for keys a topic never has.
#[derive(Debug, Clone, Copy, Default)]
pub struct VoidSerde;

impl Serde<()> for VoidSerde {
    fn serialize(&self, _topic: &str, _data: &()) -> Result<Option<Bytes>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<(), SerdeError> {
        match data {
            None => Ok(()),
            Some(d) => Err(SerdeError::NotNull { len: d.len() }),
        }
    }
}

/// Any serde's type made optional: a null reads as `None` and `None` writes a null, as
/// Kafka's serdes treat null.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nullable<S>(pub S);

impl<T: 'static, S: Serde<T>> Serde<Option<T>> for Nullable<S> {
    fn serialize(&self, topic: &str, data: &Option<T>) -> Result<Option<Bytes>, SerdeError> {
        match data {
            Some(d) => self.0.serialize(topic, d),
            None => Ok(None),
        }
    }
    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(topic, data).map(Some),
            None => Ok(None),
        }
    }
}

/// A type through serde as JSON text (`serde_json`).
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// The JSON serde of `T`.
    pub fn new() -> Json<T> {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Json<{}>", std::any::type_name::<T>())
    }
}

impl<T> Serde<T> for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, _topic: &str, data: &T) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::from(serde_json::to_vec(data)?)))
    }
    fn deserialize(&self, _topic: &str, data: Option<&[u8]>) -> Result<T, SerdeError> {
        Ok(serde_json::from_slice(present::<T>(data)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_big_endian_as_kafka_writes_them() {
        let b = I32Serde.serialize("t", &0x01020304).unwrap().unwrap();
        assert_eq!(&b[..], &[1, 2, 3, 4]);
        assert_eq!(I32Serde.deserialize("t", Some(&[0xff; 4])).unwrap(), -1);
        let b = I64Serde.serialize("t", &258).unwrap().unwrap();
        assert_eq!(&b[..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert!(matches!(
            I64Serde.deserialize("t", Some(&[1, 2, 3])),
            Err(SerdeError::Size { actual: 3, .. })
        ));
    }

    #[test]
    fn null_is_refused_unless_nullable() {
        assert!(matches!(
            StringSerde.deserialize("t", None),
            Err(SerdeError::Null { .. })
        ));
        let n = Nullable(StringSerde);
        assert_eq!(n.deserialize("t", None).unwrap(), None);
        assert_eq!(
            n.deserialize("t", Some(b"x")).unwrap(),
            Some("x".to_string())
        );
        assert_eq!(n.serialize("t", &None).unwrap(), None);
        assert!(VoidSerde.deserialize("t", Some(b"x")).is_err());
    }

    #[test]
    fn json_round_trips_and_reports_bad_input() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Order {
            id: u32,
            item: String,
        }
        let json = Json::<Order>::new();
        let o = Order {
            id: 7,
            item: "tea".into(),
        };
        let b = json.serialize("t", &o).unwrap().unwrap();
        assert_eq!(&b[..], br#"{"id":7,"item":"tea"}"#);
        assert_eq!(json.deserialize("t", Some(&b[..])).unwrap(), o);
        assert!(matches!(
            json.deserialize("t", Some(b"{")),
            Err(SerdeError::Json(_))
        ));
        assert!(matches!(
            StringSerde.deserialize("t", Some(&[0xff])),
            Err(SerdeError::Utf8(_))
        ));
    }
}
