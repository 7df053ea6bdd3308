//! Minimal binary encoding shared by the document file and the sync
//! envelope: big-endian integers, fixed arrays and `u32`-length-prefixed
//! byte strings. Reading never panics; a short or overlong input is an
//! error that names the field being read.

/// Appends fields to a byte buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn new() -> Writer {
        Writer::default()
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub(super) fn u8(&mut self, value: u8) -> &mut Self {
        self.buf.push(value);
        self
    }

    pub(super) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    pub(super) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// A `u32` length, then the bytes. Callers bound their inputs far below
    /// 4 GiB; a longer input is truncated to a length that then fails to read.
    pub(super) fn blob(&mut self, bytes: &[u8]) -> &mut Self {
        self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.bytes(bytes)
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from a byte slice; every read names its field for errors.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

/// A read that failed: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WireError(pub(super) String);

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(super) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError(format!(
                "{field} is truncated: needs {n} bytes, {} left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(super) fn u64(&mut self, field: &str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `u32`-length-prefixed byte string.
    pub(super) fn blob(&mut self, field: &str) -> Result<&'a [u8], WireError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    /// A count of items of at least `item_size` bytes each, checked against
    /// the bytes left so a forged count cannot make the caller allocate.
    pub(super) fn count(&mut self, item_size: usize, field: &str) -> Result<usize, WireError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(item_size) > self.rest.len() {
            return Err(WireError(format!(
                "{field} count {n} does not fit in the {} bytes left",
                self.rest.len()
            )));
        }
        Ok(n)
    }

    /// Fails unless the whole input was read.
    pub(super) fn end(&self, what: &str) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError(format!(
                "{} unexpected bytes after the end of the {what}",
                self.rest.len()
            )))
        }
    }
}
