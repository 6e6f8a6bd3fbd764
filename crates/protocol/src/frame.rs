//! Kafka's framing: every request and response is a big-endian `i32` size followed by that
//! many bytes. Read defensively: a negative size, or one above `socket.request.max.bytes`,
//! is refused before anything is allocated.
//!
//! Cancel safety: [`read_frame`] is not cancel-safe (a partly read frame is lost); call it
//! from one task per connection and do not race it against other futures mid-frame.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative or above the limit (Kafka closes the connection).
    #[error("frame size {size} is outside 0..={limit} (socket.request.max.bytes)")]
    InvalidSize {
        /// The size the peer sent.
        size: i64,
        /// The configured limit.
        limit: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed inside a frame ({read} of {expected} bytes read)")]
    Truncated {
        /// Bytes read.
        read: usize,
        /// Bytes the frame declared.
        expected: usize,
    },
    /// A read failed.
    #[error("reading a frame failed")]
    Io(#[from] std::io::Error),
}

/// Reads one frame body (without its size prefix). `Ok(None)` on a clean end of stream
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut size_buf[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                read: got,
                expected: 4,
            });
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 || size as usize > max_size {
        return Err(FrameError::InvalidSize {
            size: i64::from(size),
            limit: max_size,
        });
    }
    let size = size as usize;
    let mut body = BytesMut::zeroed(size);
    let mut read = 0;
    while read < size {
        let n = reader.read(&mut body[read..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                read,
                expected: size,
            });
        }
        read += n;
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_read_and_bad_sizes_refused() {
        let mut input: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0];
        assert_eq!(
            &read_frame(&mut input, 10).await.unwrap().unwrap()[..],
            &[1, 2, 3]
        );
        assert!(read_frame(&mut input, 10)
            .await
            .unwrap()
            .unwrap()
            .is_empty());
        assert!(read_frame(&mut input, 10).await.unwrap().is_none());

        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 100 * 1024 * 1024).await,
            Err(FrameError::InvalidSize {
                size: 2147483647,
                ..
            })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut negative, 10).await,
            Err(FrameError::InvalidSize { .. })
        ));
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut short, 10).await,
            Err(FrameError::Truncated {
                read: 2,
                expected: 5
            })
        ));
        let mut half_size: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half_size, 10).await,
            Err(FrameError::Truncated { .. })
        ));
    }
}
