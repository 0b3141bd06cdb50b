//! Canister log records: what `fetch_canister_logs` serves. Each
//! `debug_print` line and each trap message is a record `{ idx,
//! timestamp_nanos, content }`; the buffer holds at most the canister's
//! `log_memory_limit` bytes of content, dropping the oldest records first.

use std::collections::VecDeque;

use ic_management_canister_types::CanisterLogRecord;
use serde::{Deserialize, Serialize};

/// The IC's default `log_memory_limit`: 4 KiB of log content per canister.
pub const DEFAULT_LOG_MEMORY_LIMIT: u64 = 4096;

/// One record, as saved with the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    idx: u64,
    timestamp_nanos: u64,
    #[serde(with = "serde_bytes")]
    content: Vec<u8>,
}

/// A canister's bounded log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LogBuffer {
    records: VecDeque<LogRecord>,
    bytes: u64,
    next_idx: u64,
}

impl LogBuffer {
    /// Appends a record and drops the oldest ones until the content fits in
    /// `limit` bytes. A record larger than `limit` is cut to its first
    /// `limit` bytes, as the IC truncates one.
    pub fn push(&mut self, now: u64, content: &[u8], limit: u64) {
        let take = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let content = content[..take].to_vec();
        let idx = self.next_idx;
        self.next_idx += 1;
        self.bytes += content.len() as u64;
        self.records.push_back(LogRecord {
            idx,
            timestamp_nanos: now,
            content,
        });
        self.shrink_to(limit);
    }

    /// Drops the oldest records until the content fits in `limit` bytes.
    pub fn shrink_to(&mut self, limit: u64) {
        while self.bytes > limit {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old.content.len() as u64;
        }
    }

    /// Bytes of content held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The records, oldest first, in the management canister's type.
    pub fn records(&self) -> Vec<CanisterLogRecord> {
        self.records
            .iter()
            .map(|r| CanisterLogRecord {
                idx: r.idx,
                timestamp_nanos: r.timestamp_nanos,
                content: r.content.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_records_are_dropped_at_the_limit() {
        let mut log = LogBuffer::default();
        for i in 0..10u64 {
            log.push(i, format!("line {i}").as_bytes(), 20);
        }
        let records = log.records();
        // "line n" is 6 bytes: three fit in 20.
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].idx, 7);
        assert_eq!(records[2].content, b"line 9");
        assert_eq!(records[2].timestamp_nanos, 9);
        assert_eq!(log.bytes(), 18);
        log.push(10, &[b'x'; 50], 20);
        assert_eq!(log.records().len(), 1);
        assert_eq!(log.records()[0].content.len(), 20);
    }
}
