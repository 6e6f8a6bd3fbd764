//! Reading a coordinator partition back: every record and marker of a log from its start,
//! in order, which is how both coordinators rebuild their state when they take a partition
//! over.

use strom_storage::Log;
use strom_types::batch::{self, BatchError, BatchHeader, RecordBatch};
use strom_types::control::{marker_of, Marker};

/// One item of a coordinator log.
#[derive(Debug)]
pub enum Item<'a> {
    /// A record: its key and value (`None`: a tombstone).
    Record(Option<&'a [u8]>, Option<&'a [u8]>),
    /// A transaction marker.
    Marker(Marker),
}

/// Calls `f` with each batch header and item of `log`, from its start to its end. Returns
/// the number of records read.
pub fn for_each(log: &Log, mut f: impl FnMut(&BatchHeader, Item<'_>)) -> Result<usize, String> {
    let mut records = 0usize;
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let info = log
            .read(offset, 1 << 20, None, true)
            .map_err(|e| e.to_string())?;
        let Some(region) = info.region else { break };
        let bytes = region.read_to_vec().map_err(|e| e.to_string())?;
        let mut next = offset;
        for b in batch::batches(&bytes) {
            let b: RecordBatch<'_> = b.map_err(|e| e.to_string())?;
            let h = *b.header();
            next = h.next_offset();
            if h.is_control() {
                if let Some(m) = marker_of(&b) {
                    f(&h, Item::Marker(m));
                }
                continue;
            }
            b.try_for_each_record::<BatchError>(64 << 20, |_, r| {
                records += 1;
                f(&h, Item::Record(r.key, r.value));
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(records)
}
