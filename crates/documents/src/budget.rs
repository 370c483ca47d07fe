//! The decompressed-bytes allowance of one extraction.
//!
//! Every decompressing read goes through [`Budget::read_all`] (or charges [`Budget::charge`]
//! itself) in blocks of at most [`BLOCK`] bytes, so output stops within one block of the limit:
//! a bomb is refused while it inflates, not after.

use std::io::Read;

use crate::{DocumentKind, ExtractError};

/// Largest amount read (and charged) in one step.
pub(crate) const BLOCK: usize = 64 * 1024;

pub(crate) struct Budget {
    kind: DocumentKind,
    limit: u64,
    used: u64,
}

impl Budget {
    pub(crate) fn new(kind: DocumentKind, limit: u64) -> Self {
        Budget {
            kind,
            limit,
            used: 0,
        }
    }

    /// Counts `n` more decompressed bytes; fails once the total passes the limit.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), ExtractError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(self.exceeded());
        }
        Ok(())
    }

    pub(crate) fn exceeded(&self) -> ExtractError {
        ExtractError::DecompressionLimit {
            kind: self.kind,
            limit: self.limit,
        }
    }

    /// Bytes still allowed.
    pub(crate) fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Reads `reader` to its end, charging every block before keeping it. A read error is
    /// reported as the document being corrupt.
    pub(crate) fn read_all(&mut self, mut reader: impl Read) -> Result<Vec<u8>, ExtractError> {
        let mut out = Vec::new();
        let mut block = vec![0u8; BLOCK];
        loop {
            let n = match reader.read(&mut block) {
                Ok(0) => return Ok(out),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::corrupt(self.kind, e)),
            };
            self.charge(n as u64)?;
            out.extend_from_slice(&block[..n]);
        }
    }

    /// Reads `reader` to its end or its first error, charging every block; keeps what came out
    /// before an error (damaged compressed data is read as far as it goes, as PDF readers do).
    pub(crate) fn read_lenient(&mut self, mut reader: impl Read) -> Result<Vec<u8>, ExtractError> {
        let mut out = Vec::new();
        let mut block = vec![0u8; BLOCK];
        loop {
            match reader.read(&mut block) {
                Ok(0) => return Ok(out),
                Ok(n) => {
                    self.charge(n as u64)?;
                    out.extend_from_slice(&block[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_within_one_block_of_the_limit() {
        let mut budget = Budget::new(DocumentKind::Docx, 1000);
        let endless = std::io::repeat(0);
        let err = budget.read_all(endless).unwrap_err();
        assert!(matches!(err, ExtractError::DecompressionLimit { .. }));
        assert!(budget.used <= 1000 + BLOCK as u64);
    }

    #[test]
    fn charges_add_up_across_reads() {
        let mut budget = Budget::new(DocumentKind::Odt, 10);
        assert_eq!(budget.read_all(&b"12345"[..]).unwrap(), b"12345");
        assert_eq!(budget.remaining(), 5);
        assert!(budget.read_all(&b"123456"[..]).is_err());
    }
}
