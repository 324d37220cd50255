//! The byte format of a persisted index (`snapshots.rs`): little-endian integers and
//! length-prefixed arrays. Every length read is checked against the bytes the snapshot still
//! has, so a damaged or truncated snapshot fails to load (and the node reads the store
//! instead); it never makes the reader allocate more than the snapshot's own size.

use std::io::{self, Read, Write};

pub(super) fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("search snapshot: {what}"),
    )
}

pub(super) struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn u32(&mut self, v: u32) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn u64(&mut self, v: u64) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn i64(&mut self, v: i64) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn f32(&mut self, v: f32) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn len(&mut self, n: usize) -> io::Result<()> {
        self.u64(n as u64)
    }

    pub fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.len(b.len())?;
        self.out.write_all(b)
    }

    pub fn str(&mut self, s: &str) -> io::Result<()> {
        self.bytes(s.as_bytes())
    }

    /// An array of fixed-size values, `N` bytes each, encoded by `enc`.
    fn array<T: Copy, const N: usize>(
        &mut self,
        v: &[T],
        enc: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        self.len(v.len())?;
        let mut buf = Vec::with_capacity(N * 8192);
        for part in v.chunks(8192) {
            buf.clear();
            for &x in part {
                buf.extend_from_slice(&enc(x));
            }
            self.out.write_all(&buf)?;
        }
        Ok(())
    }

    pub fn u32s(&mut self, v: &[u32]) -> io::Result<()> {
        self.array(v, u32::to_le_bytes)
    }

    pub fn u64s(&mut self, v: &[u64]) -> io::Result<()> {
        self.array(v, u64::to_le_bytes)
    }

    pub fn i64s(&mut self, v: &[i64]) -> io::Result<()> {
        self.array(v, i64::to_le_bytes)
    }

    pub fn f32s(&mut self, v: &[f32]) -> io::Result<()> {
        self.array(v, f32::to_le_bytes)
    }

    pub fn i8s(&mut self, v: &[i8]) -> io::Result<()> {
        self.len(v.len())?;
        for part in v.chunks(1 << 16) {
            let bytes: Vec<u8> = part.iter().map(|&b| b as u8).collect();
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    pub fn postings(&mut self, v: &[(u32, f32)]) -> io::Result<()> {
        self.array(v, |(c, f)| {
            let mut out = [0u8; 8];
            out[..4].copy_from_slice(&c.to_le_bytes());
            out[4..].copy_from_slice(&f.to_le_bytes());
            out
        })
    }
}

pub(super) struct Reader<R: Read> {
    input: R,
    /// Bytes the snapshot has left: no length may exceed it.
    remaining: u64,
}

impl<R: Read> Reader<R> {
    /// Reads a snapshot of `size` bytes.
    pub fn new(input: R, size: u64) -> Self {
        Reader {
            input,
            remaining: size,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn fixed<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        self.take(N as u64)?;
        let mut b = [0u8; N];
        self.input.read_exact(&mut b)?;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> io::Result<()> {
        self.remaining = self
            .remaining
            .checked_sub(n)
            .ok_or_else(|| invalid("truncated"))?;
        Ok(())
    }

    pub fn u32(&mut self) -> io::Result<u32> {
        self.fixed().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> io::Result<u64> {
        self.fixed().map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> io::Result<i64> {
        self.fixed().map(i64::from_le_bytes)
    }

    pub fn f32(&mut self) -> io::Result<f32> {
        self.fixed().map(f32::from_le_bytes)
    }

    /// A count of items of `size` bytes each, checked against what is left.
    fn count(&mut self, size: u64) -> io::Result<usize> {
        let n = self.u64()?;
        if n.checked_mul(size)
            .is_none_or(|bytes| bytes > self.remaining)
        {
            return Err(invalid("a length runs past the end"));
        }
        usize::try_from(n).map_err(|_| invalid("a length does not fit"))
    }

    /// A count of items that are themselves length-prefixed (at least 8 bytes each).
    pub fn len(&mut self) -> io::Result<usize> {
        self.count(8)
    }

    pub fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.count(1)?;
        self.take(n as u64)?;
        let mut v = vec![0u8; n];
        self.input.read_exact(&mut v)?;
        Ok(v)
    }

    pub fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| invalid("text is not UTF-8"))
    }

    fn array<T, const N: usize>(&mut self, dec: impl Fn([u8; N]) -> T) -> io::Result<Vec<T>> {
        let n = self.count(N as u64)?;
        self.take((n * N) as u64)?;
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; N * 8192];
        let mut left = n;
        while left > 0 {
            let now = left.min(8192);
            let part = &mut buf[..now * N];
            self.input.read_exact(part)?;
            out.extend(
                part.chunks_exact(N)
                    .map(|c| dec(c.try_into().expect("exact chunks"))),
            );
            left -= now;
        }
        Ok(out)
    }

    pub fn u32s(&mut self) -> io::Result<Vec<u32>> {
        self.array(u32::from_le_bytes)
    }

    pub fn u64s(&mut self) -> io::Result<Vec<u64>> {
        self.array(u64::from_le_bytes)
    }

    pub fn i64s(&mut self) -> io::Result<Vec<i64>> {
        self.array(i64::from_le_bytes)
    }

    pub fn f32s(&mut self) -> io::Result<Vec<f32>> {
        self.array(f32::from_le_bytes)
    }

    pub fn i8s(&mut self) -> io::Result<Vec<i8>> {
        // Bytes as they are (the bulk of a snapshot: a vector's int8 codes); the conversion
        // reuses the allocation.
        Ok(self.bytes()?.into_iter().map(|b| b as i8).collect())
    }

    pub fn postings(&mut self) -> io::Result<Vec<(u32, f32)>> {
        self.array(|b: [u8; 8]| {
            let c = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            (c, f32::from_le_bytes(b[4..].try_into().expect("4 bytes")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_lengths_are_bounded() {
        let mut w = Writer::new(Vec::new());
        w.u32(7).unwrap();
        w.i64(-3).unwrap();
        w.str("héllo").unwrap();
        w.u32s(&(0..20_000).collect::<Vec<_>>()).unwrap();
        w.postings(&[(1, 0.5), (9, 2.0)]).unwrap();
        w.i8s(&[-1, 1]).unwrap();
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes[..], bytes.len() as u64);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.i64().unwrap(), -3);
        assert_eq!(r.string().unwrap(), "héllo");
        assert_eq!(r.u32s().unwrap(), (0..20_000).collect::<Vec<_>>());
        assert_eq!(r.postings().unwrap(), vec![(1, 0.5), (9, 2.0)]);
        assert_eq!(r.i8s().unwrap(), vec![-1, 1]);
        assert_eq!(r.remaining(), 0);
        // A length beyond the snapshot's size is refused before anything is allocated.
        let mut w = Writer::new(Vec::new());
        w.u64(u64::MAX / 2).unwrap();
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes[..], bytes.len() as u64);
        assert!(r.u32s().is_err());
        // Truncated.
        let mut w = Writer::new(Vec::new());
        w.u32s(&[1, 2, 3]).unwrap();
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes[..bytes.len() - 1], bytes.len() as u64 - 1);
        assert!(r.u32s().is_err());
    }
}
