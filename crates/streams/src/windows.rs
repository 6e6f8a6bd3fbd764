//! Windows: how windowed aggregations cut a key's records into time ranges (Kafka's
//! [`TimeWindows`] for tumbling and hopping windows, [`SlidingWindows`] and
//! [`SessionWindows`]), the windowed key they produce ([`Windowed`]), and its serdes under
//! Kafka's byte layouts ([`TimeWindowedSerde`], [`SessionWindowedSerde`]).
//!
//! Kafka rejects bad window parameters (a zero size, an advance larger than the size) by
//! throwing when the window is made; here the window keeps the reason, and the aggregation
//! using it reports it as a topology error when the application is built, as other
//! topology mistakes are.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::serdes::{Serde, SerdeError};

/// A time range (Kafka's `Window`): `start` inclusive; `end` exclusive for time windows,
/// inclusive for sliding and session windows, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The first time in the window (ms).
    pub start: i64,
    /// The window's end (ms).
    pub end: i64,
}

impl Window {
    /// The window from `start` to `end`.
    pub fn new(start: i64, end: i64) -> Window {
        Window { start, end }
    }
}

/// A key with the window its aggregate covers (Kafka's `Windowed<K>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Windowed<K> {
        Windowed { key, window }
    }
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    /// Kafka's `Windowed.toString`: `[key@start/end]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}@{}/{}]",
            self.key, self.window.start, self.window.end
        )
    }
}

/// Milliseconds of `d`, or why they do not fit (Kafka's `validateMillisecondDuration`).
fn millis(d: Duration, what: &str) -> Result<i64, String> {
    i64::try_from(d.as_millis()).map_err(|_| format!("{what} does not fit in milliseconds"))
}

/// The first of two results' errors.
fn both(a: Result<i64, String>, b: Result<i64, String>) -> (i64, i64, Option<String>) {
    match (a, b) {
        (Ok(a), Ok(b)) => (a, b, None),
        (Err(e), _) | (_, Err(e)) => (0, 0, Some(e)),
    }
}

/// Fixed-size windows, tumbling or hopping (Kafka's `TimeWindows`): windows of `size`
/// starting every `advance` (equal to the size for tumbling windows), from time 0. A
/// window takes records until stream time passes its end plus the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
    pub(crate) invalid: Option<String>,
}

impl TimeWindows {
    /// Tumbling windows of `size` that take no out-of-order record after their end.
    pub fn of_size_with_no_grace(size: Duration) -> TimeWindows {
        TimeWindows::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that take records until `grace` after their end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> TimeWindows {
        let (size_ms, grace_ms, invalid) = both(
            millis(size, "the window size"),
            millis(grace, "the grace period"),
        );
        TimeWindows::checked(size_ms, size_ms, grace_ms, invalid)
    }

    /// Hopping windows: a window starts every `advance` (at most the size).
    pub fn advance_by(self, advance: Duration) -> TimeWindows {
        match millis(advance, "the advance") {
            Ok(a) => TimeWindows::checked(self.size_ms, a, self.grace_ms, self.invalid),
            Err(e) => TimeWindows {
                invalid: self.invalid.or(Some(e)),
                ..self
            },
        }
    }

    fn checked(size_ms: i64, advance_ms: i64, grace_ms: i64, invalid: Option<String>) -> Self {
        let invalid = invalid.or_else(|| {
            if size_ms <= 0 {
                Some("Window size (sizeMs) must be larger than zero.".to_string())
            } else if advance_ms <= 0 || advance_ms > size_ms {
                Some(format!(
                    "Window advancement interval should be more than zero and less than window \
                     duration which is {size_ms} ms, but given advancement interval is: \
                     {advance_ms} ms"
                ))
            } else {
                None
            }
        });
        TimeWindows {
            size_ms,
            advance_ms,
            grace_ms,
            invalid,
        }
    }

    /// The window size (ms).
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// How far apart windows start (ms).
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// The grace period (ms).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The windows a record at `timestamp` falls in, by start (Kafka's `windowsFor`): none
    /// for a negative timestamp, since windows start at 0.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        if self.invalid.is_some() {
            return Vec::new();
        }
        let first = timestamp
            .saturating_sub(self.size_ms)
            .saturating_add(self.advance_ms)
            .max(0);
        let mut start = first / self.advance_ms * self.advance_ms;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window::new(start, start.saturating_add(self.size_ms)));
            match start.checked_add(self.advance_ms) {
                Some(s) => start = s,
                None => break,
            }
        }
        out
    }
}

/// Sliding windows (Kafka's `SlidingWindows`, KIP-450): every window of length
/// `time_difference` (both ends inclusive) that holds a distinct set of one key's records;
/// windows are made only where a record begins or ends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindows {
    time_difference_ms: i64,
    grace_ms: i64,
    pub(crate) invalid: Option<String>,
}

impl SlidingWindows {
    /// Windows of records at most `time_difference` apart, taking no late record.
    pub fn of_time_difference_with_no_grace(time_difference: Duration) -> SlidingWindows {
        SlidingWindows::of_time_difference_and_grace(time_difference, Duration::ZERO)
    }

    /// Windows of records at most `time_difference` apart, taking records until `grace`
    /// after a window's end.
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        let (time_difference_ms, grace_ms, invalid) = both(
            millis(time_difference, "the time difference"),
            millis(grace, "the grace period"),
        );
        SlidingWindows {
            time_difference_ms,
            grace_ms,
            invalid,
        }
    }

    /// The window length (ms).
    pub fn time_difference_ms(&self) -> i64 {
        self.time_difference_ms
    }

    /// The grace period (ms).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// Session windows (Kafka's `SessionWindows`): a key's records closer than the inactivity
/// gap form one session, from its first record to its last; a record between two sessions
/// merges them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
    pub(crate) invalid: Option<String>,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity, taking no late record.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> SessionWindows {
        SessionWindows::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions closed by `gap` of inactivity, taking records until `grace` after that.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> SessionWindows {
        let (gap_ms, grace_ms, mut invalid) = both(
            millis(gap, "the inactivity gap"),
            millis(grace, "the grace period"),
        );
        if invalid.is_none() && gap_ms <= 0 {
            invalid = Some("Gap time cannot be zero or negative.".to_string());
        }
        SessionWindows {
            gap_ms,
            grace_ms,
            invalid,
        }
    }

    /// The inactivity gap (ms).
    pub fn inactivity_gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// The grace period (ms).
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// Why windowed bytes could not be read.
#[derive(Debug, thiserror::Error)]
enum WindowedError {
    #[error("a windowed key of {len} bytes is shorter than its {need} bytes of window")]
    Short { len: usize, need: usize },
    #[error("the inner serde wrote null for the key of a windowed key")]
    NullKey,
}

fn custom(e: WindowedError) -> SerdeError {
    SerdeError::Custom(Box::new(e))
}

fn read_i64(b: &[u8]) -> i64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[..8]);
    i64::from_be_bytes(t)
}

fn inner_bytes<K, S: Serde<K>>(inner: &S, topic: &str, key: &K) -> Result<Bytes, SerdeError> {
    inner
        .serialize(topic, key)?
        .ok_or_else(|| custom(WindowedError::NullKey))
}

/// The key part of `data`, which ends with `window` bytes of window.
fn split(data: Option<&[u8]>, window: usize) -> Result<(&[u8], &[u8]), SerdeError> {
    let data = data.ok_or(SerdeError::Null {
        type_name: "Windowed",
    })?;
    match data.len().checked_sub(window) {
        Some(at) => Ok(data.split_at(at)),
        None => Err(custom(WindowedError::Short {
            len: data.len(),
            need: window,
        })),
    }
}

/// A time-windowed key as Kafka's `TimeWindowedSerializer` writes it: the key's bytes,
/// then the window start (8 bytes, big-endian). The end is not written; reading takes it
/// from the window size (saturating, as Kafka truncates an overflowing end).
#[derive(Debug, Clone, Copy)]
pub struct TimeWindowedSerde<S> {
    inner: S,
    window_size_ms: i64,
}

impl<S> TimeWindowedSerde<S> {
    /// Windowed keys of `inner`'s keys, in windows of `window_size` (a sliding window's
    /// size is its time difference).
    pub fn new(inner: S, window_size: Duration) -> TimeWindowedSerde<S> {
        TimeWindowedSerde {
            inner,
            window_size_ms: i64::try_from(window_size.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for TimeWindowedSerde<S> {
    fn serialize(&self, topic: &str, data: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = inner_bytes(&self.inner, topic, &data.key)?;
        let mut b = BytesMut::with_capacity(key.len() + 8);
        b.put_slice(&key);
        b.put_i64(data.window.start);
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let (key, window) = split(data, 8)?;
        let start = read_i64(window);
        let end = start.saturating_add(self.window_size_ms);
        Ok(Windowed::new(
            self.inner.deserialize(topic, Some(key))?,
            Window::new(start, end),
        ))
    }
}

/// A session-windowed key as Kafka's `SessionWindowedSerializer` (its `SessionKeySchema`)
/// writes it: the key's bytes, then the session end, then its start (8 bytes each,
/// big-endian).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionWindowedSerde<S>(pub S);

impl<K: 'static, S: Serde<K>> Serde<Windowed<K>> for SessionWindowedSerde<S> {
    fn serialize(&self, topic: &str, data: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = inner_bytes(&self.0, topic, &data.key)?;
        let mut b = BytesMut::with_capacity(key.len() + 16);
        b.put_slice(&key);
        b.put_i64(data.window.end);
        b.put_i64(data.window.start);
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let (key, window) = split(data, 16)?;
        let end = read_i64(&window[..8]);
        let start = read_i64(&window[8..]);
        Ok(Windowed::new(
            self.0.deserialize(topic, Some(key))?,
            Window::new(start, end),
        ))
    }
}

/// A shared serde used where a concrete one is needed.
pub(crate) struct Shared<T>(pub Arc<dyn Serde<T>>);

impl<T: 'static> Serde<T> for Shared<T> {
    fn serialize(&self, topic: &str, data: &T) -> Result<Option<Bytes>, SerdeError> {
        self.0.serialize(topic, data)
    }

    fn deserialize(&self, topic: &str, data: Option<&[u8]>) -> Result<T, SerdeError> {
        self.0.deserialize(topic, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::{I32Serde, StringSerde};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn time_windowed_keys_are_the_key_then_the_start() {
        let serde = TimeWindowedSerde::new(StringSerde, ms(100));
        let k = Windowed::new("ab".to_string(), Window::new(0x0102, 0x0166));
        let b = serde.serialize("t", &k).unwrap().unwrap();
        assert_eq!(&b[..], b"ab\0\0\0\0\0\0\x01\x02");
        assert_eq!(serde.deserialize("t", Some(&b)).unwrap(), k);
        // The end comes from the size, saturating as Kafka truncates it.
        let far = TimeWindowedSerde::new(I32Serde, ms(10));
        let b = far
            .serialize("t", &Windowed::new(7, Window::new(i64::MAX - 1, 0)))
            .unwrap()
            .unwrap();
        assert_eq!(&b[..4], &[0, 0, 0, 7]);
        let back = far.deserialize("t", Some(&b)).unwrap();
        assert_eq!(back.window, Window::new(i64::MAX - 1, i64::MAX));
        assert!(serde.deserialize("t", Some(b"short")).is_err());
        assert!(serde.deserialize("t", None).is_err());
    }

    #[test]
    fn session_windowed_keys_are_the_key_then_end_then_start() {
        let serde = SessionWindowedSerde(StringSerde);
        let k = Windowed::new("k".to_string(), Window::new(5, 0x0a0b));
        let b = serde.serialize("t", &k).unwrap().unwrap();
        assert_eq!(&b[..], b"k\0\0\0\0\0\0\x0a\x0b\0\0\0\0\0\0\0\x05");
        assert_eq!(serde.deserialize("t", Some(&b)).unwrap(), k);
        // Negative times are two's complement, as Java's ByteBuffer.putLong writes them.
        let neg = Windowed::new(String::new(), Window::new(-1, -1));
        let b = serde.serialize("t", &neg).unwrap().unwrap();
        assert_eq!(&b[..], &[0xff; 16]);
        assert_eq!(serde.deserialize("t", Some(&b)).unwrap(), neg);
        assert!(serde.deserialize("t", Some(&[0; 15])).is_err());
    }

    #[test]
    fn windowed_keys_print_as_kafka_prints_them() {
        let k = Windowed::new("a", Window::new(0, 10));
        assert_eq!(k.to_string(), "[a@0/10]");
    }

    #[test]
    fn a_record_falls_in_size_over_advance_hopping_windows() {
        let w = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5));
        assert_eq!(
            w.windows_for(12),
            vec![Window::new(5, 15), Window::new(10, 20)]
        );
        assert_eq!(
            w.windows_for(3),
            vec![Window::new(0, 10)],
            "no window starts before 0"
        );
        let t = TimeWindows::of_size_and_grace(ms(10), ms(3));
        assert_eq!(t.windows_for(10), vec![Window::new(10, 20)]);
        assert_eq!(t.windows_for(9), vec![Window::new(0, 10)]);
        assert!(t.windows_for(-1).is_empty());
        let thirds = TimeWindows::of_size_with_no_grace(ms(9)).advance_by(ms(3));
        assert_eq!(thirds.windows_for(20).len(), 3);
    }

    #[test]
    fn bad_windows_keep_kafka_s_reason() {
        assert!(TimeWindows::of_size_with_no_grace(ms(0)).invalid.is_some());
        let w = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(11));
        assert!(w.invalid.unwrap().contains("advancement interval"));
        assert!(TimeWindows::of_size_with_no_grace(ms(10))
            .advance_by(ms(0))
            .invalid
            .is_some());
        assert!(SessionWindows::of_inactivity_gap_with_no_grace(ms(0))
            .invalid
            .is_some());
        assert!(SlidingWindows::of_time_difference_with_no_grace(ms(0))
            .invalid
            .is_none());
        assert!(TimeWindows::of_size_with_no_grace(Duration::MAX)
            .invalid
            .is_some());
    }
}
