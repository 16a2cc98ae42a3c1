//! gzip for /metrics, compressed on as many threads as the exposition has parts, the way pigz
//! does it: each part is deflated on its own and ended by a sync flush (an empty stored block,
//! which leaves the stream on a byte boundary with no final block yet), the last one is
//! finished, and the pieces one after the other are a single deflate stream. Header and
//! trailer (CRC-32 and length of the whole) are RFC 1952's: one gzip member, which every
//! client reads, whether or not it reads concatenated members. Parts start with no dictionary,
//! which costs a few hundred bytes each.

use std::io;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// `parts` one after the other, gzipped at `level`.
pub(super) fn gzip(parts: &[Vec<u8>], level: u32) -> io::Result<Vec<u8>> {
    let last = parts.len().saturating_sub(1);
    let deflated: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
        let threads: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| s.spawn(move || deflate(part, level, i == last)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("gzip panicked")))
            })
            .collect()
    });
    let mut crc = Crc::new();
    for part in parts {
        crc.update(part);
    }
    // ID1 ID2, CM deflate, no flags, no time, XFL 0, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    for d in deflated {
        out.extend_from_slice(&d?);
    }
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32, as `Crc::amount` keeps it.
    out.extend_from_slice(&crc.amount().to_le_bytes());
    Ok(out)
}

/// `data` as raw deflate: sync-flushed, or finished when it is the `last` piece.
fn deflate(data: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // The exposition compresses about tenfold; a twelfth is a fair first guess.
    let mut out = Vec::with_capacity(data.len() / 12 + 64);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let done = c.total_in() as usize;
        let status = c
            .compress_vec(&data[done..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        // A flush is complete when it left room in the output; a finish says so.
        let complete = if last {
            status == Status::StreamEnd
        } else {
            all_in && out.len() < out.capacity()
        };
        if complete {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // A single-member decoder: it reads the one member and checks its CRC and length.
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn parts_gzipped_apart_read_back_as_one_member_of_their_concatenation() {
        // Lines like an exposition's, and enough of them that every part needs several
        // output buffers; an empty part in the middle and one at the end.
        let line = |i: usize| {
            format!(
                "backlogctl_listen_backlog{{netns=\"{i}\",port=\"{}\"}} {}\n",
                i % 977,
                i * 7
            )
        };
        let big: Vec<u8> = (0..60_000).flat_map(|i| line(i).into_bytes()).collect();
        let small = b"# HELP x y\n".to_vec();
        for parts in [
            vec![big.clone(), Vec::new(), small.clone(), big[..1000].to_vec()],
            vec![small.clone(), big.clone(), Vec::new()],
            vec![big.clone()],
            vec![Vec::new()],
        ] {
            let z = gzip(&parts, 1).unwrap();
            assert_eq!(gunzip(&z), parts.concat());
            if parts.concat().len() > 100_000 {
                assert!(
                    z.len() * 5 < parts.concat().len(),
                    "compressed: {}",
                    z.len()
                );
            }
        }
    }
}
