//! The Hugging Face cache layout, shared with `huggingface_hub` and every tool built on it:
//!
//! ```text
//! CACHE/models--OWNER--NAME/
//!     blobs/HASH                 file contents, named by SHA-256 (LFS) or git blob id
//!     blobs/HASH.incomplete      a download in progress (resumable)
//!     refs/REVISION              the commit a branch or tag pointed at when last fetched
//!     snapshots/COMMIT/FILE      relative symlink to ../../blobs/HASH (a copy where links fail)
//! ```

use std::path::{Path, PathBuf};

use super::{is_disk_full, CachedFile, HubError};

/// Paths inside one cache folder.
#[derive(Clone, Debug)]
pub struct CacheLayout {
    root: PathBuf,
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// An I/O error on `path`; a full disk is reported as such, whichever file met it.
fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HubError + 'a {
    move |source| {
        if is_disk_full(&source) {
            HubError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            HubError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

impl CacheLayout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `models--OWNER--NAME`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    pub fn blob_path(&self, repo: &str, hash: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(hash)
    }

    pub fn incomplete_path(&self, repo: &str, hash: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("blobs")
            .join(format!("{hash}.incomplete"))
    }

    pub fn snapshot_path(&self, repo: &str, commit: &str, file: &str) -> PathBuf {
        let mut p = self.repo_dir(repo).join("snapshots").join(commit);
        for part in file.split('/') {
            p.push(part);
        }
        p
    }

    /// The commit `revision` names: itself if it is one, else what `refs/REVISION` says.
    pub fn resolve_revision(&self, repo: &str, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_ascii_lowercase());
        }
        let text = std::fs::read_to_string(self.repo_dir(repo).join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_commit(commit).then(|| commit.to_string())
    }

    /// The cached file, if `revision` resolves locally and the snapshot entry points at a blob.
    pub fn find(&self, repo: &str, revision: &str, file: &str) -> Option<CachedFile> {
        if file.split('/').any(|p| p.is_empty() || p == "..") {
            return None;
        }
        let commit = self.resolve_revision(repo, revision)?;
        let path = self.snapshot_path(repo, &commit, file);
        let meta = std::fs::metadata(&path).ok()?; // follows the link
        if !meta.is_file() {
            return None;
        }
        let blob = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let sha256 = (name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| name.to_string());
        Some(CachedFile {
            path,
            blob,
            commit,
            size: meta.len(),
            sha256,
            reused: true,
        })
    }

    /// Records that `revision` pointed at `commit` (no-op when the revision is a commit).
    pub fn write_ref(&self, repo: &str, revision: &str, commit: &str) -> Result<(), HubError> {
        if is_commit(revision) || revision.contains("..") {
            return Ok(());
        }
        let path = self.repo_dir(repo).join("refs").join(revision);
        if std::fs::read_to_string(&path)
            .map(|t| t.trim() == commit)
            .unwrap_or(false)
        {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        let tmp = path.with_extension("tmp-ref");
        std::fs::write(&tmp, commit).map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot write", &path))
    }

    /// Makes `snapshots/COMMIT/FILE` point at the blob and returns that path.
    pub fn link_snapshot(
        &self,
        repo: &str,
        commit: &str,
        file: &str,
        hash: &str,
    ) -> Result<PathBuf, HubError> {
        if file.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(HubError::InvalidResponse {
                url: repo.to_string(),
                message: format!("unsafe file name `{file}`"),
            });
        }
        let path = self.snapshot_path(repo, commit, file);
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&parent).map_err(io("cannot create", &parent))?;
        let blob = self.blob_path(repo, hash);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).map_err(io("cannot replace", &path))?;
        }
        // ../../blobs/HASH from snapshots/COMMIT/, one more ../ per folder in FILE.
        let depth = file.matches('/').count();
        let mut target = PathBuf::new();
        for _ in 0..depth + 2 {
            target.push("..");
        }
        target.push("blobs");
        target.push(hash);
        if make_link(&target, &path).is_err() {
            std::fs::copy(&blob, &path).map_err(io("cannot copy into", &path))?;
        }
        Ok(path)
    }

    /// Removes a cached file: its snapshot entry, and its blob when no other snapshot uses it.
    pub fn remove(&self, repo: &str, commit: &str, file: &str) -> Result<(), HubError> {
        let path = self.snapshot_path(repo, commit, file);
        let blob = std::fs::canonicalize(&path).ok();
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).map_err(io("cannot delete", &path))?;
        }
        if let Some(blob) = blob {
            if blob.starts_with(
                self.repo_dir(repo)
                    .join("blobs")
                    .canonicalize()
                    .unwrap_or_default(),
            ) && !self.blob_in_use(repo, &blob)
            {
                std::fs::remove_file(&blob).map_err(io("cannot delete", &blob))?;
            }
        }
        Ok(())
    }

    fn blob_in_use(&self, repo: &str, blob: &Path) -> bool {
        fn walk(dir: &Path, blob: &Path) -> bool {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return false;
            };
            rd.filter_map(|e| e.ok()).any(|e| {
                let p = e.path();
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => walk(&p, blob),
                    Ok(_) => std::fs::canonicalize(&p)
                        .map(|t| t == blob)
                        .unwrap_or(false),
                    Err(_) => false,
                }
            })
        }
        walk(&self.repo_dir(repo).join("snapshots"), blob)
    }
}

#[cfg(unix)]
fn make_link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn make_link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn make_link(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("no symbolic links on this platform"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let dir = tempfile::tempdir().unwrap();
        let l = CacheLayout::new(dir.path());
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let hash = "ab".repeat(32);
        std::fs::create_dir_all(l.repo_dir("org/m").join("blobs")).unwrap();
        std::fs::write(l.blob_path("org/m", &hash), b"weights").unwrap();
        let p = l
            .link_snapshot("org/m", commit, "sub/model.gguf", &hash)
            .unwrap();
        assert_eq!(
            p,
            dir.path()
                .join("models--org--m/snapshots")
                .join(commit)
                .join("sub/model.gguf")
        );
        l.write_ref("org/m", "main", commit).unwrap();
        let found = l.find("org/m", "main", "sub/model.gguf").unwrap();
        assert_eq!(found.size, 7);
        assert_eq!(found.sha256.as_deref(), Some(hash.as_str()));
        assert_eq!(std::fs::read(&found.path).unwrap(), b"weights");
        assert!(l.find("org/m", "other-branch", "sub/model.gguf").is_none());
        l.remove("org/m", commit, "sub/model.gguf").unwrap();
        assert!(!l.blob_path("org/m", &hash).exists());
    }
}
