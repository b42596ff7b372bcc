//! The launcher runtime for launchers written in C, C++ or C# (P/Invoke): a shared library
//! (`librockit_edge.so`) and its header `include/rockit_edge.h`, generated from this file
//! by `build.rs`. A launcher opens a runtime on an image (by a session with the app's client
//! key, or by its manifest URL), waits for the preload, reads the game's files while the
//! image streams into the cache — through [`rockit_read`], or by mounting the build with
//! [`rockit_mount`] so the game reads it with plain file I/O — shows progress, and closes,
//! which sends the play trace and ends the session.
//!
//! Conventions: strings are NUL-terminated UTF-8; a function that fails returns NULL or -1
//! and leaves a message for [`rockit_last_error`] on the calling thread. A runtime may be
//! used from several threads at once, except [`rockit_close`], which ends it.

use edge_client::fs::{Mount, MountOptions};
use edge_client::{ImageSource, Options, Runtime, Session, SessionRequest};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An open runtime (opaque).
pub struct RockitRuntime {
    /// Shared with the runtime's mounts, which serve reads until they are unmounted.
    rt: Arc<Runtime>,
}

/// A mounted image (opaque).
pub struct RockitMount {
    mount: Mount,
}

/// Progress of a runtime, for a launcher's UI.
#[repr(C)]
pub struct RockitProgress {
    /// Bytes of the build verified in the cache.
    pub verified_bytes: u64,
    /// Bytes of the build in all.
    pub total_bytes: u64,
    /// Bytes received from the network.
    pub downloaded_bytes: u64,
    /// The preload for the bandwidth the runtime was opened with (stream bytes).
    pub preload_bytes: u64,
    /// 1 when the preload is verified (the game can start), else 0.
    pub preload_reached: c_int,
    /// 1 while the background stream runs, else 0.
    pub streaming: c_int,
    /// Reads that had to wait for the network so far.
    pub stalls: u64,
    /// 1 while a read is waiting for the network now, else 0.
    pub stalled_now: c_int,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn fail(message: impl std::fmt::Display) {
    let text = message.to_string().replace('\0', " ");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(text).unwrap_or_default());
}

/// A required string argument.
fn need(v: Result<Option<&str>, String>, what: &str) -> Result<String, String> {
    v?.map(str::to_string).ok_or_else(|| format!("{what} is required"))
}

/// A string argument: `None` for NULL, an error for text that is not UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, String> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes a NUL-terminated string (this function's contract).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|_| format!("{what} is not UTF-8"))
}

fn options(cache_dir: &str, bandwidth: u64) -> Options {
    let mut o = Options::new(cache_dir);
    o.bandwidth = (bandwidth > 0).then_some(bandwidth);
    o
}

fn opened(r: Result<Runtime, String>) -> *mut RockitRuntime {
    match r {
        Ok(rt) => Box::into_raw(Box::new(RockitRuntime { rt: Arc::new(rt) })),
        Err(e) => {
            fail(e);
            std::ptr::null_mut()
        }
    }
}

/// The message of the last failure on this thread ("" when none). Valid until the next
/// call into the library on this thread.
#[no_mangle]
pub extern "C" fn rockit_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Opens the current build of an app: a launcher session with the app's client key
/// (`ck_…`), the image verified (signature, index, every chunk), streaming into
/// `cache_dir` in the background. `bandwidth` caps downloads in bytes per second (0: no
/// cap). NULL on failure.
///
/// # Safety
/// Every string is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rockit_open_session(
    server: *const c_char,
    org: *const c_char,
    app: *const c_char,
    client_key: *const c_char,
    cache_dir: *const c_char,
    bandwidth: u64,
) -> *mut RockitRuntime {
    // SAFETY: the strings are NULL or NUL-terminated (this function's contract).
    let args = unsafe {
        (
            text(server, "server"),
            text(org, "org"),
            text(app, "app"),
            text(client_key, "client_key"),
            text(cache_dir, "cache_dir"),
        )
    };
    opened((|| {
        let req = SessionRequest {
            server: need(args.0, "server")?,
            org: need(args.1, "org")?,
            app: need(args.2, "app")?,
            client_key: need(args.3, "client_key")?,
            build_id: None,
        };
        let cache = need(args.4, "cache_dir")?;
        let session = Session::open(&req, Duration::from_secs(20)).map_err(|e| e.to_string())?;
        Runtime::open(ImageSource::Session(Box::new(session)), options(&cache, bandwidth))
            .map_err(|e| e.to_string())
    })())
}

/// Opens the image at `manifest_url` (its `manifest.json`), checking its signature with
/// `public_key_pem` when given (PEM text; NULL for an unsigned image), streaming into
/// `cache_dir`. `bandwidth` as for [`rockit_open_session`]. NULL on failure.
///
/// # Safety
/// Every string is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rockit_open_url(
    manifest_url: *const c_char,
    public_key_pem: *const c_char,
    cache_dir: *const c_char,
    bandwidth: u64,
) -> *mut RockitRuntime {
    // SAFETY: the strings are NULL or NUL-terminated (this function's contract).
    let args = unsafe {
        (
            text(manifest_url, "manifest_url"),
            text(public_key_pem, "public_key_pem"),
            text(cache_dir, "cache_dir"),
        )
    };
    opened((|| {
        let url = args.0?.ok_or("manifest_url is required")?.to_string();
        let pem = args.1?.map(str::to_string);
        let cache = args.2?.ok_or("cache_dir is required")?;
        Runtime::open(
            ImageSource::Url { manifest_url: url, public_key_pem: pem },
            options(cache, bandwidth),
        )
        .map_err(|e| e.to_string())
    })())
}

/// Waits up to `timeout_ms` for the preload: 1 when it is verified (start the game; play
/// time counts from here), 0 when the time ran out or the stream ended without it
/// ([`rockit_progress`] tells which), -1 for a NULL runtime.
///
/// # Safety
/// `rt` is NULL or a runtime from `rockit_open_*` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn rockit_wait_preload(rt: *const RockitRuntime, timeout_ms: u32) -> c_int {
    // SAFETY: `rt` is NULL or a live runtime (this function's contract).
    let Some(r) = (unsafe { rt.as_ref() }) else {
        fail("the runtime is NULL");
        return -1;
    };
    if r.rt.wait_preload(Duration::from_millis(u64::from(timeout_ms))) {
        r.rt.start_clock();
        1
    } else {
        0
    }
}

/// Reads up to `len` bytes of the build's file `path` at `offset` into `buf`, from the
/// cache or — when not there yet — from the network at once (recorded in the play trace).
/// Returns the bytes read (0 at or past the end of the file), or -1.
///
/// # Safety
/// `rt` is NULL or a live runtime; `path` is NULL or NUL-terminated; `buf` points to `len`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rockit_read(
    rt: *const RockitRuntime,
    path: *const c_char,
    offset: u64,
    buf: *mut u8,
    len: u64,
) -> i64 {
    // SAFETY: `rt` is NULL or a live runtime, `path` NULL or NUL-terminated (this
    // function's contract).
    let (r, p) = unsafe { (rt.as_ref(), text(path, "path")) };
    let (Some(r), Ok(Some(p))) = (r, p) else {
        fail("the runtime or the path is NULL or not UTF-8");
        return -1;
    };
    if buf.is_null() && len > 0 {
        fail("the buffer is NULL");
        return -1;
    }
    match r.rt.read_path(p, offset, len) {
        Ok(data) => {
            let n = data.len().min(len as usize);
            if n > 0 {
                // SAFETY: `buf` has `len` writable bytes (contract) and `n ≤ len`.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, n) };
            }
            n as i64
        }
        Err(e) => {
            fail(e);
            -1
        }
    }
}

/// Fills `out` with the runtime's progress: 0, or -1 for a NULL argument.
///
/// # Safety
/// `rt` is NULL or a live runtime; `out` is NULL or points to a writable `RockitProgress`.
#[no_mangle]
pub unsafe extern "C" fn rockit_progress(
    rt: *const RockitRuntime,
    out: *mut RockitProgress,
) -> c_int {
    // SAFETY: both are NULL or valid (this function's contract).
    let (Some(r), Some(o)) = (unsafe { rt.as_ref() }, unsafe { out.as_mut() }) else {
        fail("the runtime or the progress is NULL");
        return -1;
    };
    let p = r.rt.progress();
    *o = RockitProgress {
        verified_bytes: p.verified_bytes,
        total_bytes: p.total_bytes,
        downloaded_bytes: p.downloaded_bytes,
        preload_bytes: p.preload_bytes,
        preload_reached: c_int::from(p.preload_reached),
        streaming: c_int::from(p.streaming),
        stalls: p.stalls,
        stalled_now: c_int::from(p.stall.is_some()),
    };
    0
}

/// Mounts the runtime's image read-only on `dir`, an existing directory (Linux, FUSE: root,
/// or `fusermount3` from the fuse3 package). Any program may then read the build there with
/// plain file I/O while it streams: reads not cached yet are fetched at once, every byte
/// is verified, and the reads go into the play trace — through the page cache, as the
/// kernel makes them (the program's reads rounded to pages, plus the kernel's read-ahead).
/// Returns a handle for [`rockit_unmount`], or NULL on failure (no such directory, no
/// FUSE, a directory already mounted over).
///
/// Unmount before [`rockit_close`]: a mount still there keeps serving reads from the cache
/// after the runtime is closed, and ends with [`rockit_unmount`] or with the process.
///
/// # Safety
/// `rt` is NULL or a live runtime; `dir` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rockit_mount(
    rt: *const RockitRuntime,
    dir: *const c_char,
) -> *mut RockitMount {
    // SAFETY: `rt` is NULL or a live runtime, `dir` NULL or NUL-terminated (this
    // function's contract).
    let (r, d) = unsafe { (rt.as_ref(), text(dir, "dir")) };
    let (Some(r), Ok(Some(d))) = (r, d) else {
        fail("the runtime or the directory is NULL or not UTF-8");
        return std::ptr::null_mut();
    };
    match edge_client::fs::mount(r.rt.clone(), Path::new(d), &MountOptions::default()) {
        Ok(mount) => Box::into_raw(Box::new(RockitMount { mount })),
        Err(e) => {
            fail(e);
            std::ptr::null_mut()
        }
    }
}

/// Unmounts a mount from [`rockit_mount`] (lazily when a program still holds a file open
/// there: the directory is detached at once and the file system ends when the last file
/// is closed) and frees the handle. 0, also for NULL.
///
/// # Safety
/// `mount` is NULL or a handle from [`rockit_mount`], not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn rockit_unmount(mount: *mut RockitMount) -> c_int {
    if mount.is_null() {
        return 0;
    }
    // SAFETY: `mount` came from `Box::into_raw` in `rockit_mount` and is not used again
    // (this function's contract).
    let m = unsafe { Box::from_raw(mount) };
    m.mount.unmount();
    0
}

/// Ends the runtime: stops the stream, sends the play trace and closes the session (when
/// opened with one and `report` is 1), and frees it. 0, or -1 when reporting failed (the
/// runtime is freed either way).
///
/// # Safety
/// `rt` is NULL or a live runtime, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn rockit_close(rt: *mut RockitRuntime, report: c_int) -> c_int {
    if rt.is_null() {
        return 0;
    }
    // SAFETY: `rt` came from `Box::into_raw` in `rockit_open_*` and is not used again
    // (this function's contract).
    let r = unsafe { Box::from_raw(rt) };
    let summary = r.rt.finish();
    if report == 1 {
        if let Err(e) = summary.report() {
            fail(e);
            return -1;
        }
    }
    0
}

/// The C header, as `build.rs` generates it from this file.
pub const HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/rockit_edge.h"));

#[cfg(test)]
mod tests {
    /// The checked-in header is the generated one (`ROCKIT_WRITE_HEADER=1` rewrites it).
    #[test]
    fn the_checked_in_header_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/rockit_edge.h");
        if std::env::var_os("ROCKIT_WRITE_HEADER").is_some() {
            std::fs::write(path, super::HEADER).unwrap();
        }
        let kept = std::fs::read_to_string(path).unwrap_or_default();
        assert!(kept == super::HEADER, "include/rockit_edge.h is stale: run `ROCKIT_WRITE_HEADER=1 cargo test -p edge-client-ffi`");
    }
}
