//! Durable storage of a devchain in a data directory.
//!
//! - `chain.json`: the chain's configuration (a restart must not change the chain id).
//! - `blocks.log`: every sealed block after genesis, appended and `fsync`ed before the
//!   block is reported: header, signed transactions, senders and receipts. A record is
//!   `len:u32 | payload | checksum:u32` (checksum = first 4 bytes of keccak(payload)),
//!   so a torn last record (crash mid-write) is detected and cut off on restart.
//! - `state.snap`: the world state at some block, written atomically (temporary file,
//!   `fsync`, rename) every [`SNAPSHOT_EVERY`] blocks and at clean shutdown. A restart
//!   loads it and re-executes only the blocks after it, checking each block's receipts
//!   root against the journal.

use crate::chain::{Block, SignedTx, TxReceipt};
use alloy::{
    consensus::{Header, ReceiptEnvelope, Transaction, TxEnvelope},
    eips::eip2718::{Decodable2718, Encodable2718},
    primitives::{Address, Bytes, keccak256},
    rlp::{Decodable, Encodable},
};
use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

/// Blocks between two state snapshots.
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// The append-only block journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
    /// `None` for an anonymous journal (an ephemeral chain's spill file).
    dir: Option<PathBuf>,
    sync_each: bool,
    len: u64,
}

/// What a journal holds when it is opened: its bytes and where each block's payload
/// sits in them (decode with [`decode_block`]).
#[derive(Debug)]
pub struct Loaded {
    /// The journal's bytes.
    pub bytes: Vec<u8>,
    /// Offset and length of each block's payload, in order.
    pub records: Vec<(u64, u32)>,
}

impl Loaded {
    /// The payload of record `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        let (offset, len) = self.records[i];
        &self.bytes[offset as usize..offset as usize + len as usize]
    }
}

/// Errors reading or writing a data directory.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file system failed.
    #[error("data directory I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A record or snapshot does not decode.
    #[error("data directory is corrupt: {0}")]
    Corrupt(String),
}

impl Journal {
    /// Opens (or creates) the journal in `dir`; returns it and the records it holds.
    /// A torn record at the end is cut off.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), PersistError> {
        fs::create_dir_all(dir)?;
        let path = dir.join("blocks.log");
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut offset = 0usize;
        while let Some((payload, next)) = next_record(&bytes, offset) {
            records.push(((offset + 4) as u64, payload.len() as u32));
            offset = next;
        }
        if offset < bytes.len() {
            tracing::warn!(
                target: "medrec::devchain",
                kept = records.len(),
                dropped_bytes = bytes.len() - offset,
                "cutting a torn record off the end of blocks.log"
            );
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        bytes.truncate(offset);
        let journal =
            Self { file, dir: Some(dir.to_path_buf()), sync_each: true, len: offset as u64 };
        Ok((journal, Loaded { bytes, records }))
    }

    /// Appends `block` and waits until it is on disk; returns where its payload is.
    pub fn append(&mut self, block: &Block) -> Result<(u64, u32), PersistError> {
        let payload = encode_block(block);
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&payload);
        record.extend_from_slice(&keccak256(&payload)[..4]);
        self.file.write_all(&record)?;
        if self.sync_each {
            self.file.sync_data()?;
        }
        let location = (self.len + 4, payload.len() as u32);
        self.len += record.len() as u64;
        Ok(location)
    }

    /// A read-only handle on the journal file, for reading blocks back.
    pub fn reader(&self) -> Result<File, PersistError> {
        Ok(self.file.try_clone()?)
    }

    /// Whether each append waits for the disk (the default). Turning it off is only
    /// for bulk loading, followed by [`Journal::flush`].
    pub const fn set_sync_each(&mut self, on: bool) {
        self.sync_each = on;
    }

    /// Waits until everything appended is on disk.
    pub fn flush(&mut self) -> Result<(), PersistError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A journal in an unnamed temporary file (removed from the file system at once, so
    /// nothing is left behind whatever happens): an ephemeral chain spills its blocks
    /// there instead of keeping them all in memory. Nothing is synced or snapshotted.
    pub fn anonymous() -> Result<Self, PersistError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("medrec-chain-{}-{nanos}.log", std::process::id()));
        let file = OpenOptions::new().create_new(true).read(true).append(true).open(&path)?;
        fs::remove_file(&path)?;
        Ok(Self { file, dir: None, sync_each: false, len: 0 })
    }

    /// Writes `state` (already encoded) as the snapshot atomically.
    pub fn write_snapshot(&self, state: &[u8]) -> Result<(), PersistError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let tmp = dir.join("state.snap.tmp");
        {
            let mut f = BufWriter::new(File::create(&tmp)?);
            f.write_all(state)?;
            f.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        }
        fs::rename(&tmp, dir.join("state.snap"))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Reads the snapshot, if there is one.
    pub fn read_snapshot(&self) -> Result<Option<Vec<u8>>, PersistError> {
        let Some(dir) = &self.dir else { return Ok(None) };
        match File::open(dir.join("state.snap")) {
            Ok(f) => {
                let mut bytes = Vec::new();
                BufReader::new(f).read_to_end(&mut bytes)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn next_record(bytes: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(offset..offset + 4)?.try_into().ok()?) as usize;
    let payload = bytes.get(offset + 4..offset + 4 + len)?;
    let check = bytes.get(offset + 4 + len..offset + 8 + len)?;
    (keccak256(payload)[..4] == *check).then_some((payload, offset + 8 + len))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over length-prefixed fields.
#[derive(Debug)]
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], PersistError> {
        if self.0.len() < n {
            return Err(PersistError::Corrupt("record ends early".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, PersistError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, PersistError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub(crate) fn field(&mut self) -> Result<&'a [u8], PersistError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn encode_block(block: &Block) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let mut header = Vec::new();
    block.header.encode(&mut header);
    put(&mut out, &header);
    out.extend_from_slice(&(block.txs.len() as u32).to_le_bytes());
    for (tx, receipt) in block.txs.iter().zip(&block.receipts) {
        put(&mut out, &tx.envelope.encoded_2718());
        out.extend_from_slice(tx.sender.as_slice());
        let envelope = receipt.envelope(tx.envelope.tx_type());
        let consensus: ReceiptEnvelope = envelope;
        put(&mut out, &consensus.encoded_2718());
        out.extend_from_slice(&receipt.gas_used.to_le_bytes());
        match receipt.contract_address {
            Some(a) => {
                out.push(1);
                out.extend_from_slice(a.as_slice());
            }
            None => out.push(0),
        }
    }
    out
}

/// Decodes a block record's payload.
pub fn decode_block(payload: &[u8]) -> Result<Block, PersistError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| PersistError::Corrupt(format!("{what}: {e}"));
    let mut f = Fields(payload);
    let mut header_bytes = f.field()?;
    let header = Header::decode(&mut header_bytes).map_err(|e| corrupt("header", &e))?;
    let count = f.u32()? as usize;
    let base_fee = header.base_fee_per_gas;
    let mut txs = Vec::with_capacity(count);
    let mut receipts = Vec::with_capacity(count);
    for _ in 0..count {
        let mut raw = f.field()?;
        let envelope = TxEnvelope::decode_2718(&mut raw).map_err(|e| corrupt("transaction", &e))?;
        let sender = Address::from_slice(f.take(20)?);
        let mut raw = f.field()?;
        let receipt = ReceiptEnvelope::decode_2718(&mut raw).map_err(|e| corrupt("receipt", &e))?;
        let gas_used = f.u64()?;
        let contract_address = match f.take(1)?[0] {
            1 => Some(Address::from_slice(f.take(20)?)),
            _ => None,
        };
        receipts.push(TxReceipt {
            success: receipt.status(),
            gas_used,
            cumulative_gas_used: receipt.cumulative_gas_used(),
            logs: receipt.logs().to_vec(),
            contract_address,
            effective_gas_price: envelope.effective_gas_price(base_fee),
            output: Bytes::new(),
        });
        txs.push(SignedTx { hash: *envelope.tx_hash(), envelope, sender });
    }
    let hash = header.hash_slow();
    Ok(Block { header, hash, txs, receipts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, ChainConfig};

    #[test]
    fn blocks_round_trip_through_the_journal_and_a_torn_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("medrec-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let chain = Chain::new(ChainConfig::default()).unwrap();
        let blocks: Vec<Block> = (1..=2).map(|n| (*chain.block(n).unwrap()).clone()).collect();
        {
            let (mut journal, loaded) = Journal::open(&dir).unwrap();
            assert!(loaded.records.is_empty());
            for b in &blocks {
                let (offset, len) = journal.append(b).unwrap();
                let mut buf = vec![0u8; len as usize];
                std::os::unix::fs::FileExt::read_exact_at(
                    &journal.reader().unwrap(),
                    &mut buf,
                    offset,
                )
                .unwrap();
                assert_eq!(decode_block(&buf).unwrap().hash, b.hash);
            }
        }
        // A crash in the middle of a third record.
        let mut f = OpenOptions::new().append(true).open(dir.join("blocks.log")).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let (_, loaded) = Journal::open(&dir).unwrap();
        assert_eq!(loaded.records.len(), 2);
        let loaded: Vec<Block> = (0..2).map(|i| decode_block(loaded.payload(i)).unwrap()).collect();
        for (a, b) in loaded.iter().zip(&blocks) {
            assert_eq!(a.hash, b.hash);
            assert_eq!(a.txs.len(), b.txs.len());
            assert_eq!(a.receipts[0].contract_address, b.receipts[0].contract_address);
            assert_eq!(a.receipts[0].gas_used, b.receipts[0].gas_used);
        }
        let len = fs::metadata(dir.join("blocks.log")).unwrap().len();
        let (_, again) = Journal::open(&dir).unwrap();
        assert_eq!(again.records.len(), 2);
        assert_eq!(fs::metadata(dir.join("blocks.log")).unwrap().len(), len);
        fs::remove_dir_all(&dir).unwrap();
    }
}
