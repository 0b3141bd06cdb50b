//! Stable memory with an undo log, so a trapped message's writes can be
//! undone without copying the whole memory per message.

/// Size of a wasm page (stable memory grows in these units).
pub(crate) const PAGE: u64 = 65536;

/// A canister's stable memory plus the undo log of the running message.
#[derive(Clone, Default)]
pub(crate) struct StableMemory {
    bytes: Vec<u8>,
    /// Original contents of each range written by the running message.
    undo: Vec<(u64, Vec<u8>)>,
    /// Size in bytes when the running message started.
    size_at_start: u64,
    /// Maximum number of pages (the IC allows hundreds of GiB; the devnet
    /// holds stable memory in RAM, so keep it bounded).
    pub max_pages: u64,
}

impl StableMemory {
    /// An empty stable memory that may grow to `max_pages`.
    pub fn new(max_pages: u64) -> Self {
        StableMemory {
            max_pages,
            ..Default::default()
        }
    }

    /// Saved contents: `bytes` (a whole number of pages) that may grow to `max_pages`.
    pub fn from_saved(bytes: Vec<u8>, max_pages: u64) -> Result<Self, String> {
        if !(bytes.len() as u64).is_multiple_of(PAGE) || bytes.len() as u64 / PAGE > max_pages {
            return Err(format!(
                "saved stable memory of {} bytes is not a whole number of pages within {max_pages}",
                bytes.len()
            ));
        }
        Ok(StableMemory {
            size_at_start: bytes.len() as u64,
            bytes,
            max_pages,
            undo: Vec::new(),
        })
    }

    /// The committed contents (between messages).
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.bytes.len() as u64 / PAGE
    }

    /// Grows by `new_pages`; returns the previous size or `u64::MAX` on failure.
    pub fn grow(&mut self, new_pages: u64) -> u64 {
        let old = self.pages();
        match old.checked_add(new_pages) {
            Some(n) if n <= self.max_pages => {
                self.bytes.resize((n * PAGE) as usize, 0);
                old
            }
            _ => u64::MAX,
        }
    }

    /// Whether `[offset, offset + size)` lies inside the memory.
    pub fn in_bounds(&self, offset: u64, size: u64) -> bool {
        offset
            .checked_add(size)
            .is_some_and(|end| end <= self.bytes.len() as u64)
    }

    /// Reads a range (caller checks bounds).
    pub fn read(&self, offset: u64, size: u64) -> &[u8] {
        &self.bytes[offset as usize..(offset + size) as usize]
    }

    /// Writes a range (caller checks bounds), remembering what it replaced.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let range = offset as usize..offset as usize + data.len();
        // Bytes beyond the size at message start vanish on rollback anyway.
        if offset < self.size_at_start {
            let keep_end = range.end.min(self.size_at_start as usize);
            self.undo
                .push((offset, self.bytes[range.start..keep_end].to_vec()));
        }
        self.bytes[range].copy_from_slice(data);
    }

    /// Marks the start of a message.
    pub fn begin(&mut self) {
        self.undo.clear();
        self.size_at_start = self.bytes.len() as u64;
    }

    /// Keeps the running message's changes.
    pub fn commit(&mut self) {
        self.undo.clear();
        self.size_at_start = self.bytes.len() as u64;
    }

    /// Undoes the running message's changes.
    pub fn rollback(&mut self) {
        while let Some((offset, old)) = self.undo.pop() {
            self.bytes[offset as usize..offset as usize + old.len()].copy_from_slice(&old);
        }
        self.bytes.truncate(self.size_at_start as usize);
    }

    /// Total bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}
