//! Content-defined cutting of a stream: the exact cut points of FastCDC 2020's `StreamCDC`
//! (normalization level 1, the original gear table), from a larger buffer that is compacted
//! rarely. `StreamCDC` moves its whole remaining buffer and zero-fills it after every chunk
//! (about five bytes of memory traffic per byte cut); this does about one. The cut points
//! must stay identical to what earlier builds were cut with, or deduplication against them
//! would be lost: `same_cuts_as_stream_cdc` holds them to that.

use crate::ChunkParams;
use fastcdc::v2020::{cut, logarithm2, Normalization, MASKS};
use std::io::{self, Read};

/// Cuts a reader into chunks (owned byte vectors).
pub struct Cutter<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    min: usize,
    avg: usize,
    max: usize,
    masks: [u64; 4],
}

impl<R: Read> Cutter<R> {
    /// A cutter over `src` with the chunk sizes of `p`; `len` is the stream's exact length
    /// when known (a tar entry), so a small file does not get a buffer of megabytes.
    pub fn new(src: R, p: &ChunkParams, len: Option<u64>) -> Cutter<R> {
        let bits = logarithm2(p.avg);
        let norm = Normalization::Level1.bits();
        let (s, l) = (MASKS[(bits + norm) as usize], MASKS[(bits - norm) as usize]);
        let max = p.max as usize;
        Cutter {
            src,
            // At least `max` (the cut window) unless the whole stream is shorter.
            buf: vec![0; len.map_or(4 * max, |n| (n as usize).clamp(1, 4 * max))],
            start: 0,
            end: 0,
            eof: false,
            min: p.min as usize,
            avg: p.avg as usize,
            max,
            masks: [s, l, s << 1, l << 1],
        }
    }

    /// The next chunk; `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.end - self.start < self.max && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while !self.eof && self.end < self.buf.len() {
                match self.src.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if self.start == self.end {
            return Ok(None);
        }
        // Like StreamCDC: the cut is looked for in at most `max` bytes from the chunk start.
        let window = &self.buf[self.start..self.end.min(self.start + self.max)];
        let [s, l, sl, ll] = self.masks;
        let (_, n) = cut(window, self.min, self.avg, self.max, s, l, sl, ll);
        let n = n.max(1).min(window.len());
        let chunk = window[..n].to_vec();
        self.start += n;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of repeats among noise, so some cuts fall at `max` and some by content.
    fn data(seed: u64, n: usize) -> Vec<u8> {
        let mut d = crate::roundtrip_tests::noise(seed, n);
        for (i, b) in d.iter_mut().enumerate().filter(|(i, _)| (i / 70_000) % 3 == 1) {
            *b = (i % 7) as u8;
        }
        d
    }

    /// A reader that hands out at most `step` bytes per read (as a network stream does).
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn same_cuts_as_stream_cdc() {
        for (k, p) in [
            ChunkParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 },
            ChunkParams { min: 64 << 10, avg: 256 << 10, max: 1 << 20 },
        ]
        .iter()
        .enumerate()
        {
            for len in [0, 1, 5000, 3_000_001, 9_437_184] {
                let d = data(k as u64 * 31 + len as u64, len);
                let theirs: Vec<Vec<u8>> =
                    fastcdc::v2020::StreamCDC::new(&d[..], p.min, p.avg, p.max)
                        .map(|c| c.unwrap().data)
                        .collect();
                let hint = if len % 2 == 0 { Some(len as u64) } else { None };
                let mut c = Cutter::new(Trickle(&d, 7_777), p, hint);
                let mut ours = Vec::new();
                while let Some(x) = c.next_chunk().unwrap() {
                    ours.push(x);
                }
                assert_eq!(ours.len(), theirs.len(), "params {k}, length {len}");
                assert!(ours == theirs, "params {k}, length {len}: different cuts");
            }
        }
    }
}
