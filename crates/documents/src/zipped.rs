//! Bounded reading of the ZIP containers that DOCX, ODT and EPUB files are.
//!
//! Entries are inflated through the extraction's [`Budget`]: an entry that declares more than
//! the remaining allowance is refused before it is opened, and one that lies about its size is
//! stopped within one block of the limit.

use std::io::Cursor;

use zip::ZipArchive;

use crate::budget::Budget;
use crate::{corrupt, DocumentKind, ExtractError};

pub(crate) struct Package<'a> {
    kind: DocumentKind,
    archive: ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Package<'a> {
    pub(crate) fn open(bytes: &'a [u8], kind: DocumentKind) -> Result<Self, ExtractError> {
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(kind, e))?;
        Ok(Package { kind, archive })
    }

    /// Reads one entry whole, or `None` when the package has no such entry.
    pub(crate) fn read(
        &mut self,
        name: &str,
        budget: &mut Budget,
    ) -> Result<Option<Vec<u8>>, ExtractError> {
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        let kind = self.kind;
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| corrupt(kind, format!("{name}: {e}")))?;
        if entry.size() > budget.remaining() {
            return Err(budget.exceeded());
        }
        budget.read_all(entry).map(Some)
    }

    /// Reads one entry as UTF-8 text (invalid sequences replaced).
    pub(crate) fn read_text(
        &mut self,
        name: &str,
        budget: &mut Budget,
    ) -> Result<Option<String>, ExtractError> {
        Ok(self
            .read(name, budget)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}
