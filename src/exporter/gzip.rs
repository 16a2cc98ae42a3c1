//! A body gzipped on two threads as one gzip member (RFC 1952), as pigz's `--independent`
//! does: each thread deflates half of the bytes with no history of the other half, the first
//! half ending in a sync flush (an empty stored block: byte-aligned and not final) so that
//! the two halves are one deflate stream, and the halves' CRC-32s are combined for the
//! trailer. A client inflates one ordinary member; compressing 8 MB of exposition took 8 ms
//! on one thread, the last step of a scrape before sending.

use std::io::{self, Write};

use flate2::{Compression, Crc, write::DeflateEncoder};

/// The member's header: deflate, no flags, no time, "fastest" (XFL 4), OS unknown (255), as
/// flate2 writes it for level 1.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// `body`, the concatenation of its pieces, as one gzip member at `level`.
pub(super) fn gzip(body: &[Vec<u8>], level: u32) -> io::Result<Vec<u8>> {
    let total: usize = body.iter().map(Vec::len).sum();
    let (first, second) = halves(body, total / 2);
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| deflate(&second, level, true));
        (deflate(&first, level, false), other.join())
    });
    // Compressing into memory fails only on a bug, which panics here too.
    let (b, b_crc) = b.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let (a, mut crc) = a?;
    crc.combine(&b_crc);
    let mut out = Vec::with_capacity(HEADER.len() + a.len() + b.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&crc.amount().to_le_bytes());
    Ok(out)
}

/// The bytes of `body` before offset `at` and from it on, as slices of its pieces.
fn halves(body: &[Vec<u8>], at: usize) -> (Vec<&[u8]>, Vec<&[u8]>) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut offset = 0;
    for piece in body {
        let cut = at.saturating_sub(offset).min(piece.len());
        first.push(&piece[..cut]);
        second.push(&piece[cut..]);
        offset += piece.len();
    }
    (first, second)
}

/// Raw deflate of `parts` and their CRC-32: the last half finished (its final block), the
/// first ending in a sync flush for the other to follow.
fn deflate(parts: &[&[u8]], level: u32, last: bool) -> io::Result<(Vec<u8>, Crc)> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = Crc::new();
    // The exposition compresses about tenfold at level 1 (23× whole); a twelfth is a fair
    // first guess.
    let mut z = DeflateEncoder::new(Vec::with_capacity(len / 12), Compression::new(level));
    for part in parts.iter().filter(|p| !p.is_empty()) {
        crc.update(part);
        z.write_all(part)?;
    }
    if last {
        return Ok((z.finish()?, crc));
    }
    z.flush()?;
    // Taken before the encoder is dropped, which would end the stream with a final block.
    let out = std::mem::take(z.get_mut());
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Inflates one member (GzDecoder stops after the first, checking its CRC and length) and
    /// asserts that nothing follows it.
    fn one_member(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut d = flate2::bufread::GzDecoder::new(z);
        d.read_to_end(&mut out).expect("one valid gzip member");
        assert!(d.into_inner().is_empty(), "nothing after the member");
        out
    }

    #[test]
    fn the_two_halves_are_one_member_that_inflates_to_the_body_whatever_its_pieces() {
        let line =
            |i: usize| format!("backlogctl_listen_backlog{{netns=\"{i}\",port=\"{i}\"}} 128\n");
        let big: Vec<u8> = (0..50_000).flat_map(|i| line(i).into_bytes()).collect();
        let bodies: Vec<Vec<Vec<u8>>> = vec![
            vec![],
            vec![Vec::new()],
            vec![b"x".to_vec()],
            vec![big.clone()],
            vec![big[..10].to_vec(), big[10..].to_vec()],
            big.chunks(7_777).map(<[u8]>::to_vec).collect(),
            vec![Vec::new(), big.clone(), Vec::new(), b"tail\n".to_vec()],
        ];
        for body in bodies {
            let z = gzip(&body, 1).unwrap();
            assert_eq!(one_member(&z), body.concat(), "{} pieces", body.len());
        }
        // Compressed, not stored.
        assert!(gzip(std::slice::from_ref(&big), 1).unwrap().len() < big.len() / 10);
    }
}
