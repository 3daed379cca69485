//! Files that must survive a kill or a power loss (checkpoints, exports, evaluation
//! results, downloads). A rename is atomic, but on its own it is not durable: after a
//! power loss the new name can point at a file whose data never reached the disk (an
//! empty checkpoint), or the rename itself can be lost. So the data is written under a
//! temporary name and `fsync`ed, then renamed, then the folder holding the new name is
//! `fsync`ed. Every step goes through this module, which can record the operations it
//! performs on the current thread ([`trace`]), so tests check their order.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One file-system operation, as [`trace`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A file's data and metadata reached the disk.
    SyncFile(PathBuf),
    /// A folder's entries (names created, renamed, removed in it) reached the disk.
    SyncDir(PathBuf),
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
}

thread_local! {
    static TRACE: RefCell<Option<Vec<Op>>> = const { RefCell::new(None) };
}

fn record(op: Op) {
    TRACE.with(|t| {
        if let Some(ops) = t.borrow_mut().as_mut() {
            ops.push(op);
        }
    });
}

/// Run `f` and return, with its result, the operations of this module it performed on
/// this thread, in order (traces do not nest: an inner one takes the operations).
pub fn trace<T>(f: impl FnOnce() -> T) -> (T, Vec<Op>) {
    let outer = TRACE.with(|t| t.borrow_mut().replace(Vec::new()));
    let out = f();
    let ops = TRACE.with(|t| std::mem::replace(&mut *t.borrow_mut(), outer)).unwrap_or_default();
    (out, ops)
}

/// `fsync` an open file (data and metadata).
pub fn sync_file(file: &File, path: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    record(Op::SyncFile(path.to_path_buf()));
    Ok(())
}

/// `fsync` a folder, so that the names created or renamed in it are on the disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)?.sync_all()?;
    record(Op::SyncDir(dir.to_path_buf()));
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Rename `from` to `to` (same file system) and make the new name durable.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    record(Op::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
    sync_dir(&parent_of(to))?;
    let from_parent = parent_of(from);
    if from_parent != parent_of(to) {
        sync_dir(&from_parent)?;
    }
    Ok(())
}

/// Create `path` with what `write` puts in it, synced to the disk (no rename: for files
/// inside a folder that is itself renamed into place afterwards).
pub fn create_file(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    write(&mut file)?;
    file.flush()?;
    sync_file(&file, path)
}

/// Replace `path` atomically and durably with what `write` puts in a temporary file
/// beside it: on any failure the old content (or no file) remains.
pub fn replace_file(path: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> std::io::Result<()> {
    replace_via_path(path, |tmp| {
        let mut file = File::create(tmp)?;
        write(&mut file)?;
        file.flush()
    })
}

/// [`replace_file`] for writers that take a path (e.g. a serialiser that opens the file
/// itself): `write` creates the temporary file, which is then synced and renamed.
pub fn replace_via_path(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent_of(path).join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write(&tmp).and_then(|()| sync_file(&File::open(&tmp)?, &tmp)).and_then(|()| rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`replace_file`] with these bytes.
pub fn replace_with_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file(path, |f| f.write_all(bytes))
}

/// Sync every file under `dir` and the folders themselves (deepest first), so that a
/// folder written in place can then be renamed durably.
pub fn sync_tree(dir: &Path) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            sync_file(&File::open(&p)?, &p)?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_syncs_the_data_before_the_rename_and_the_folder_after() {
        let dir = std::env::temp_dir().join(format!("entmin-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latest.json");
        std::fs::write(&path, b"old").unwrap();
        let (r, ops) = trace(|| replace_with_bytes(&path, b"new"));
        r.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let tmp = dir.join(format!(".latest.json.tmp-{}", std::process::id()));
        assert_eq!(
            ops,
            vec![Op::SyncFile(tmp.clone()), Op::Rename { from: tmp, to: path.clone() }, Op::SyncDir(dir.clone())]
        );
        // A failed write leaves the old content and no temporary file.
        let err = replace_file(&path, |_| Err(std::io::Error::other("disk full")));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
