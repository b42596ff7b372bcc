//! The patch's zstd stream, written as concatenated frames (a zstd reader decodes them as one
//! stream). Records and literal bytes that compress go into "strong" frames, compressed on a
//! second thread while the matcher works on the next file; long runs of literal bytes that do
//! not compress (game data is mostly already compressed: textures, sounds, archives) go into
//! frames of their own at a fast level, where a high level would spend most of the patch's
//! time searching for matches that are not there. Figures behind both levels:
//! docs/BENCHMARKS.md, "Patch creation on a real game".

use std::io::{self, Write};
use std::sync::mpsc;
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::CParameter;

/// zstd level of the records and of literal bytes that compress. Measured on SuperTuxKart
/// 1.2 → 1.4: level 19 makes these frames 11 % smaller than level 9 (the whole patch 1.6 %)
/// for eight times the time, which would make the patch slower to create than
/// `zstd -3 --patch-from`; levels 9 to 12 differ by 0.03 %.
pub const STRONG_LEVEL: i32 = 9;

/// zstd level of the frames of literal bytes that do not compress.
const FAST_LEVEL: i32 = 1;

/// Literal runs shorter than this stay in the strong frame: a frame of their own would cost
/// more in headers and lost history than it saves.
const FAST_MIN: usize = 16 << 10;

/// A fast frame is kept when it saves less than 1/`FAST_GAIN` of its bytes: such bytes do not
/// compress, and the strong level would not make much more of them either.
const FAST_GAIN: usize = 32;

/// Largest fast frame: a single-segment frame's window is its whole content, which must stay
/// within what a reader holds.
const FAST_PIECE: usize = 4 << 20;

/// Bytes of the strong frame handed to the compressing thread at once.
const PIECE: usize = 1 << 20;

/// What the compressing thread writes next.
enum Piece {
    /// Bytes to compress in the (current or a new) strong frame.
    Strong(Vec<u8>),
    /// A whole fast frame, written as it is after the strong frame ends.
    Frame(Vec<u8>),
}

/// The writer of the patch stream: [`Write`] for records (strong frames), [`Self::literal`]
/// for an insert's literal bytes.
pub(crate) struct PatchStream {
    tx: mpsc::SyncSender<Piece>,
    buf: Vec<u8>,
    fast: zstd::bulk::Compressor<'static>,
    /// Literal bytes that went into fast frames, for the curious (benchmarks, tests).
    pub(crate) fast_bytes: u64,
}

/// Runs `body` with a patch stream whose frames a second thread compresses into `out` (with
/// a zstd window of 2^`window_log` bytes); answers `body`'s value and `out`.
pub(crate) fn with_stream<W: Write + Send, T>(
    out: W,
    window_log: u32,
    body: impl FnOnce(&mut PatchStream) -> io::Result<T>,
) -> io::Result<(T, W)> {
    // A few pieces in flight: the matcher runs ahead of the compressor by at most that much.
    let (tx, rx) = mpsc::sync_channel::<Piece>(4);
    std::thread::scope(|s| {
        let enc = s.spawn(move || encode(out, rx, window_log));
        let body_result = (|| -> io::Result<T> {
            let mut ps = PatchStream {
                tx,
                buf: Vec::with_capacity(PIECE),
                fast: zstd::bulk::Compressor::new(FAST_LEVEL)?,
                fast_bytes: 0,
            };
            let t = body(&mut ps)?;
            ps.send_strong()?;
            Ok(t)
        })();
        // The sender is gone with `ps`: the compressing thread ends its last frame.
        let out = enc.join().map_err(|_| io::Error::other("the patch compressor panicked"))?;
        // The compressor's own error first: the body only saw that it stopped.
        let out = out?;
        Ok((body_result?, out))
    })
}

impl PatchStream {
    fn send(&self, p: Piece) -> io::Result<()> {
        self.tx.send(p).map_err(|_| io::Error::other("the patch compressor stopped"))
    }

    /// Hands the gathered strong bytes to the compressing thread.
    fn send_strong(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
            self.send(Piece::Strong(full))?;
        }
        Ok(())
    }

    /// Writes literal bytes, `parts` one after the other: in a fast frame when they are long
    /// and do not compress, else in the strong frame.
    pub(crate) fn literal(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n < FAST_MIN {
            return parts.iter().try_for_each(|p| self.write_all(p));
        }
        let raw = parts.concat();
        for piece in raw.chunks(FAST_PIECE) {
            // The fast frame is its own probe: made at once, kept when nothing compresses.
            let frame = self.fast.compress(piece)?;
            if frame.len() + piece.len() / FAST_GAIN >= piece.len() {
                self.send_strong()?;
                self.send(Piece::Frame(frame))?;
                self.fast_bytes += piece.len() as u64;
            } else {
                self.write_all(piece)?;
            }
        }
        Ok(())
    }
}

impl Write for PatchStream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.send_strong()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compressing thread: strong pieces into strong frames, fast frames between them.
fn encode<W: Write>(mut out: W, rx: mpsc::Receiver<Piece>, window_log: u32) -> io::Result<W> {
    let mut z = Encoder::new(STRONG_LEVEL)?;
    z.set_parameter(CParameter::WindowLog(window_log))?;
    let mut ob: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::CCtx::out_size());
    let mut open = false;
    for p in rx {
        match p {
            Piece::Strong(bytes) => {
                if !open {
                    z.reinit()?;
                    open = true;
                }
                let mut inb = InBuffer::around(&bytes);
                while inb.pos() < bytes.len() {
                    ob.clear();
                    z.run(&mut inb, &mut OutBuffer::around(&mut ob))?;
                    out.write_all(&ob)?;
                }
            }
            Piece::Frame(frame) => {
                if open {
                    end_frame(&mut z, &mut out, &mut ob)?;
                    open = false;
                }
                out.write_all(&frame)?;
            }
        }
    }
    if open {
        end_frame(&mut z, &mut out, &mut ob)?;
    }
    Ok(out)
}

/// Ends the strong frame: what zstd still holds, then the frame's end.
fn end_frame<W: Write>(z: &mut Encoder<'_>, out: &mut W, ob: &mut Vec<u8>) -> io::Result<()> {
    loop {
        ob.clear();
        let left = z.finish(&mut OutBuffer::around(ob), false)?;
        out.write_all(ob)?;
        if left == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roundtrip_tests::noise;
    use std::io::Read;

    #[test]
    fn literals_that_do_not_compress_go_in_fast_frames_and_the_stream_reads_as_one() {
        let random = noise(5, 100_000);
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(2000);
        let (fast, out) = with_stream(Vec::new(), 23, |w| {
            w.write_all(b"records")?;
            w.literal(&[&random[..40_000], &random[40_000..]])?;
            w.write_all(b"more records")?;
            w.literal(&[&text])?;
            w.literal(&[b"short"])?;
            Ok(w.fast_bytes)
        })
        .unwrap();
        assert_eq!(fast, 100_000, "the random run alone");
        let want = [&b"records"[..], &random, b"more records", &text, b"short"].concat();
        let mut got = Vec::new();
        zstd::stream::read::Decoder::new(&out[..]).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
        assert!(out.len() < want.len() - text.len() + 4096, "the text compressed");
        // Three frames: records, the random run, then the rest.
        let mut frames = 0;
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            rest = &rest[n..];
            frames += 1;
        }
        assert_eq!(frames, 3);
    }
}
