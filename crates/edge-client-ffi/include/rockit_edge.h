/* rockit-edge launcher runtime: C interface. Generated from crates/edge-client-ffi/src/lib.rs
 * by its build.rs; do not edit. */
#ifndef ROCKIT_EDGE_H
#define ROCKIT_EDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An open runtime (opaque).
 */
typedef struct RockitRuntime RockitRuntime;

/**
 * A mounted image (opaque).
 */
typedef struct RockitMount RockitMount;

/**
 * Progress of a runtime, for a launcher's UI.
 */
typedef struct RockitProgress {
    /**
     * Bytes of the build verified in the cache.
     */
    uint64_t verified_bytes;
    /**
     * Bytes of the build in all.
     */
    uint64_t total_bytes;
    /**
     * Bytes received from the network.
     */
    uint64_t downloaded_bytes;
    /**
     * The preload for the bandwidth the runtime was opened with (stream bytes).
     */
    uint64_t preload_bytes;
    /**
     * 1 when the preload is verified (the game can start), else 0.
     */
    int preload_reached;
    /**
     * 1 while the background stream runs, else 0.
     */
    int streaming;
    /**
     * Reads that had to wait for the network so far.
     */
    uint64_t stalls;
    /**
     * 1 while a read is waiting for the network now, else 0.
     */
    int stalled_now;
} RockitProgress;

/**
 * The message of the last failure on this thread ("" when none). Valid until the next
 * call into the library on this thread.
 */
const char *rockit_last_error(void);

/**
 * Opens the current build of an app: a launcher session with the app's client key
 * (`ck_…`), the image verified (signature, index, every chunk), streaming into
 * `cache_dir` in the background. `bandwidth` caps downloads in bytes per second (0: no
 * cap). NULL on failure.
 */
RockitRuntime *rockit_open_session(const char *server, const char *org, const char *app, const char *client_key, const char *cache_dir, uint64_t bandwidth);

/**
 * Opens the image at `manifest_url` (its `manifest.json`), checking its signature with
 * `public_key_pem` when given (PEM text; NULL for an unsigned image), streaming into
 * `cache_dir`. `bandwidth` as for `rockit_open_session`. NULL on failure.
 */
RockitRuntime *rockit_open_url(const char *manifest_url, const char *public_key_pem, const char *cache_dir, uint64_t bandwidth);

/**
 * Waits up to `timeout_ms` for the preload: 1 when it is verified (start the game; play
 * time counts from here), 0 when the time ran out or the stream ended without it
 * (`rockit_progress` tells which), -1 for a NULL runtime.
 */
int rockit_wait_preload(const RockitRuntime *rt, uint32_t timeout_ms);

/**
 * Reads up to `len` bytes of the build's file `path` at `offset` into `buf`, from the
 * cache or — when not there yet — from the network at once (recorded in the play trace).
 * Returns the bytes read (0 at or past the end of the file), or -1.
 */
int64_t rockit_read(const RockitRuntime *rt, const char *path, uint64_t offset, uint8_t *buf, uint64_t len);

/**
 * Fills `out` with the runtime's progress: 0, or -1 for a NULL argument.
 */
int rockit_progress(const RockitRuntime *rt, RockitProgress *out);

/**
 * Mounts the runtime's image read-only on `dir`, an existing directory (Linux, FUSE: root,
 * or `fusermount3` from the fuse3 package). Any program may then read the build there with
 * plain file I/O while it streams: reads not cached yet are fetched at once, every byte
 * is verified, and the reads go into the play trace — through the page cache, as the
 * kernel makes them (the program's reads rounded to pages, plus the kernel's read-ahead).
 * Returns a handle for `rockit_unmount`, or NULL on failure (no such directory, no
 * FUSE, a directory already mounted over).
 *
 * Unmount before `rockit_close`: a mount still there keeps serving reads from the cache
 * after the runtime is closed, and ends with `rockit_unmount` or with the process.
 */
RockitMount *rockit_mount(const RockitRuntime *rt, const char *dir);

/**
 * Unmounts a mount from `rockit_mount` (lazily when a program still holds a file open
 * there: the directory is detached at once and the file system ends when the last file
 * is closed) and frees the handle. 0, also for NULL.
 */
int rockit_unmount(RockitMount *mount);

/**
 * Ends the runtime: stops the stream, sends the play trace and closes the session (when
 * opened with one and `report` is 1), and frees it. 0, or -1 when reporting failed (the
 * runtime is freed either way).
 */
int rockit_close(RockitRuntime *rt, int report);

#ifdef __cplusplus
}
#endif

#endif /* ROCKIT_EDGE_H */
