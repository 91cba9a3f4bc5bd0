//! Where sealed blocks live: all in memory for an ephemeral chain; for a chain with a
//! data directory, only the most recent ones, the rest read back from the journal on
//! demand (so memory does not grow with the length of the chain).

use crate::{chain::Block, persist};
use std::{collections::VecDeque, fs::File, os::unix::fs::FileExt, sync::Arc};

/// Recent blocks kept decoded in memory when blocks are on disk.
pub(crate) const RECENT_BLOCKS: usize = 1024;

/// A block's record in the journal: offset of its payload and its length.
pub(crate) type Location = (u64, u32);

#[derive(Debug)]
struct Disk {
    file: File,
    /// Location of block `i + 1`.
    index: Vec<Location>,
    recent: VecDeque<Arc<Block>>,
}

/// The sealed blocks of a chain.
#[derive(Debug)]
pub(crate) struct BlockStore {
    genesis: Arc<Block>,
    /// Blocks 1.. when in memory.
    mem: Vec<Arc<Block>>,
    disk: Option<Disk>,
}

impl BlockStore {
    /// Only the genesis block, in memory.
    pub(crate) fn new(genesis: Block) -> Self {
        Self { genesis: Arc::new(genesis), mem: Vec::new(), disk: None }
    }

    /// From now on, blocks after genesis are read back from `journal` (which must hold
    /// exactly the blocks pushed with a location).
    pub(crate) fn use_disk(&mut self, journal: File) {
        debug_assert!(self.mem.is_empty(), "switch before any block after genesis");
        self.disk = Some(Disk { file: journal, index: Vec::new(), recent: VecDeque::new() });
    }

    /// Appends the next block; `location` is where the journal holds it (disk mode).
    pub(crate) fn push(&mut self, block: Block, location: Option<Location>) {
        let block = Arc::new(block);
        match (&mut self.disk, location) {
            (Some(disk), Some(loc)) => {
                disk.index.push(loc);
                disk.recent.push_back(block);
                if disk.recent.len() > RECENT_BLOCKS {
                    disk.recent.pop_front();
                }
            }
            _ => self.mem.push(block),
        }
    }

    /// The latest block.
    pub(crate) fn latest(&self) -> &Block {
        match &self.disk {
            Some(disk) => disk.recent.back().unwrap_or(&self.genesis),
            None => self.mem.last().unwrap_or(&self.genesis),
        }
    }

    /// Block `number`, if it exists (read from the journal when not in memory).
    pub(crate) fn get(&self, number: u64) -> Option<Arc<Block>> {
        if number == 0 {
            return Some(self.genesis.clone());
        }
        let i = usize::try_from(number - 1).ok()?;
        let Some(disk) = &self.disk else { return self.mem.get(i).cloned() };
        let (offset, len) = *disk.index.get(i)?;
        let first_recent = disk.index.len() - disk.recent.len();
        if i >= first_recent {
            return disk.recent.get(i - first_recent).cloned();
        }
        let mut buf = vec![0u8; len as usize];
        match disk
            .file
            .read_exact_at(&mut buf, offset)
            .map_err(persist::PersistError::from)
            .and_then(|()| persist::decode_block(&buf))
        {
            Ok(block) => Some(Arc::new(block)),
            Err(err) => {
                tracing::error!(target: "medrec::devchain", number, %err, "cannot read a block back from the journal");
                None
            }
        }
    }
}
