//! The output directory of `unpack` and `apply`: absent or empty before the run (anything
//! else is refused), and emptied again when the run fails, so a half-written, unverified
//! tree is never left behind.

use crate::fail::Fail;
use std::fs;
use std::path::{Path, PathBuf};

/// A claimed output directory; cleaned up on drop unless [`OutDir::keep`] was called.
pub struct OutDir {
    path: PathBuf,
    existed: bool,
    keep: bool,
}

impl OutDir {
    /// Claims `path`: it must not exist, or be an empty directory.
    pub fn claim(path: &Path) -> Result<OutDir, Fail> {
        let existed = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Fail::new(format!("output directory {}: {e}", path.display()))),
            Ok(m) if !m.is_dir() => {
                return Err(Fail::new(format!(
                    "output {} exists and is not a directory",
                    path.display()
                )))
            }
            Ok(_) => {
                let mut rd = fs::read_dir(path)
                    .map_err(|e| Fail::new(format!("output directory {}: {e}", path.display())))?;
                if rd.next().is_some() {
                    return Err(Fail::new(format!(
                        "output directory {} exists and is not empty",
                        path.display()
                    )));
                }
                true
            }
        };
        Ok(OutDir { path: path.to_path_buf(), existed, keep: false })
    }

    /// The run succeeded: leave the tree in place.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        writable(&self.path);
        if !self.existed {
            let _ = fs::remove_dir_all(&self.path);
        } else if let Ok(rd) = fs::read_dir(&self.path) {
            for e in rd.flatten() {
                let p = e.path();
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let _ = if is_dir { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
    }
}

/// Makes every directory under `dir` writable again (a failed run may already have given
/// some their read-only modes), so the cleanup can remove what is inside.
fn writable(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(m) = fs::symlink_metadata(dir) else { return };
        if !m.is_dir() {
            return;
        }
        let _ =
            fs::set_permissions(dir, fs::Permissions::from_mode(m.permissions().mode() | 0o700));
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            writable(&e.path());
        }
    }
}
