//! The protobuf wire format: a reader over `(tag, value)` pairs of one message.
//!
//! Invariants: never reads past the end of its slice; a varint longer than ten bytes, a length
//! past the end, tag zero, groups and unknown wire types are errors (as text for the caller to
//! place), and a reader that returned an error returns nothing more.

/// One field value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl Value<'_> {
    pub fn wire_type(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "64-bit",
            Value::Fixed32(_) => "32-bit",
            Value::Bytes(_) => "length-delimited",
        }
    }
}

/// Iterates over the fields of one encoded message.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            failed: false,
        }
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), String> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3)
            .map_err(|_| format!("field number {} is too large", key >> 3))?;
        if tag == 0 {
            return Err("field number 0 is invalid".into());
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take_array::<8>()?)),
            2 => {
                let length =
                    usize::try_from(self.varint()?).map_err(|_| "length too large".to_owned())?;
                Value::Bytes(self.take(length)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take_array::<4>()?)),
            3 | 4 => {
                return Err(format!(
                    "field {tag} uses groups, which Kubernetes never sends"
                ));
            }
            other => return Err(format!("field {tag} has the invalid wire type {other}")),
        };
        Ok((tag, value))
    }

    /// Reads one base-128 varint.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for (index, byte) in self.bytes.iter().copied().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = self.bytes.get(index + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(if self.bytes.len() >= 10 {
            "a varint is longer than 10 bytes"
        } else {
            "truncated varint"
        }
        .into())
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if length > self.bytes.len() {
            return Err(format!(
                "a field of {length} bytes runs past the end of its message ({} bytes left)",
                self.bytes.len()
            ));
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Takes one raw byte (for packed fixed-width values).
    pub fn next_byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}
