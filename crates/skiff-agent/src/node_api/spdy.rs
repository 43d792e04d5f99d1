//! SPDY/3.1 framing, as kubectl's port-forward speaks it inside WebSocket binary messages
//! (`SPDY/3.1+portforward.k8s.io`): frame encoding and incremental decoding from a byte stream,
//! and the name/value header blocks compressed with zlib and the SPDY/3 dictionary (one
//! compression context per direction for the whole session, flushed per block).
//!
//! Pure: no I/O. [`Decoder`] takes whatever bytes arrived (frames may span or share WebSocket
//! messages) and yields complete frames.

mod dictionary;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

pub use dictionary::dictionary;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_CANCEL: u32 = 5;
pub const RST_INTERNAL_ERROR: u32 = 6;

/// The largest frame payload accepted (the length field allows 16 MiB).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The largest header block accepted after decompression.
pub const MAX_HEADER_BLOCK: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    #[error("SPDY header compression: {0}")]
    Compression(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub type Headers = Vec<(String, String)>;

/// A control frame's header block is kept compressed in [`RawFrame`]; [`Frame`] is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type this implementation ignores (as SPDY requires).
    Unknown {
        kind: u16,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| Error::Protocol("truncated frame".into()))
}

/// Encodes a name/value block (uncompressed). Names are lowercased, as SPDY/3 requires.
pub fn encode_header_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Decodes an uncompressed name/value block.
pub fn decode_header_block(block: &[u8]) -> Result<Headers> {
    let count = u32_at(block, 0)? as usize;
    if count > 1000 {
        return Err(Error::Protocol(format!("{count} headers is too many")));
    }
    let mut at = 4;
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = u32_at(block, at)? as usize;
        at += 4;
        let name = block
            .get(at..at.saturating_add(name_len))
            .ok_or_else(|| Error::Protocol("truncated header name".into()))?;
        at += name_len;
        let value_len = u32_at(block, at)? as usize;
        at += 4;
        let value = block
            .get(at..at.saturating_add(value_len))
            .ok_or_else(|| Error::Protocol("truncated header value".into()))?;
        at += value_len;
        if name.is_empty() {
            return Err(Error::Protocol("empty header name".into()));
        }
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    if at != block.len() {
        return Err(Error::Protocol(
            "trailing bytes after the header block".into(),
        ));
    }
    Ok(headers)
}

/// One direction's header compressor (zlib with the SPDY/3 dictionary, one stream per session).
pub struct HeaderCompressor {
    inner: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> HeaderCompressor {
        let mut inner = Compress::new(Compression::default(), true);
        // Setting a dictionary on a fresh stream cannot fail with the zlib-rs backend.
        let _ = inner.set_dictionary(dictionary());
        HeaderCompressor { inner }
    }

    /// Compresses one header block, ending with a sync flush so the peer can decode it alone.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut input = block;
        loop {
            out.reserve(block.len() + 128);
            let before_in = self.inner.total_in();
            self.inner
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Compression(e.to_string()))?;
            let consumed = (self.inner.total_in() - before_in) as usize;
            input = input.get(consumed..).unwrap_or(&[]);
            // Done once all input is in and the flush fit in the spare room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(out)
    }
}

/// One direction's header decompressor.
pub struct HeaderDecompressor {
    inner: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> HeaderDecompressor {
        HeaderDecompressor {
            inner: Decompress::new(true),
        }
    }

    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(Error::Compression("header block too large".into()));
            }
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let before_in = self.inner.total_in();
            let before_out = out.len();
            let mut dictionary_set = false;
            match self
                .inner
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inner
                        .set_dictionary(dictionary())
                        .map_err(|e| Error::Compression(e.to_string()))?;
                    dictionary_set = true;
                }
                Err(e) => return Err(Error::Compression(e.to_string())),
            }
            let consumed = (self.inner.total_in() - before_in) as usize;
            input = input.get(consumed..).unwrap_or(&[]);
            let produced = out.len() - before_out;
            if input.is_empty() && out.capacity() > out.len() && !dictionary_set {
                break;
            }
            if consumed == 0 && produced == 0 && !dictionary_set {
                if input.is_empty() {
                    break;
                }
                return Err(Error::Compression(
                    "no progress decompressing headers".into(),
                ));
            }
        }
        Ok(out)
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    let len = payload.len() as u32;
    out.push(flags);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// Encodes a frame; header blocks go through `compressor`.
pub fn encode(frame: &Frame, compressor: &mut HeaderCompressor) -> Result<Vec<u8>> {
    Ok(match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers,
        } => {
            let mut payload = Vec::new();
            payload.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            payload.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
            payload.push((priority & 0x7) << 5);
            payload.push(0);
            payload.extend(compressor.compress(&encode_header_block(headers))?);
            control(TYPE_SYN_STREAM, *flags, &payload)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend(compressor.compress(&encode_header_block(headers))?);
            control(TYPE_SYN_REPLY, *flags, &payload)
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend(compressor.compress(&encode_header_block(headers))?);
            control(TYPE_HEADERS, *flags, &payload)
        }
        Frame::RstStream { stream_id, status } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&status.to_be_bytes());
            control(TYPE_RST_STREAM, 0, &payload)
        }
        Frame::Settings { flags, entries } => {
            let mut payload = (entries.len() as u32).to_be_bytes().to_vec();
            for (entry_flags, id, value) in entries {
                payload.push(*entry_flags);
                payload.extend_from_slice(&id.to_be_bytes()[1..]);
                payload.extend_from_slice(&value.to_be_bytes());
            }
            control(TYPE_SETTINGS, *flags, &payload)
        }
        Frame::Ping { id } => control(TYPE_PING, 0, &id.to_be_bytes()),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            let mut payload = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&status.to_be_bytes());
            control(TYPE_GOAWAY, 0, &payload)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            control(TYPE_WINDOW_UPDATE, 0, &payload)
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() >= MAX_FRAME {
                return Err(Error::Protocol("data frame too large".into()));
            }
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.push(*flags);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(data);
            out
        }
        Frame::Unknown { kind } => control(*kind, 0, &[]),
    })
}

/// Incremental decoder over the session's incoming byte stream.
#[derive(Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    headers: HeaderDecompressor,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.buffer.len() < 8 {
            return Ok(None);
        }
        let length =
            u32::from_be_bytes([0, self.buffer[5], self.buffer[6], self.buffer[7]]) as usize;
        if length > MAX_FRAME {
            return Err(Error::Protocol(format!(
                "frame of {length} bytes is too large"
            )));
        }
        if self.buffer.len() < 8 + length {
            return Ok(None);
        }
        let head: Vec<u8> = self.buffer.drain(..8 + length).collect();
        let flags = head[4];
        let payload = &head[8..];
        if head[0] & 0x80 == 0 {
            let stream_id = u32_at(&head, 0)? & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: payload.to_vec(),
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(Error::Protocol(format!(
                "unsupported SPDY version {version}"
            )));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let frame = match kind {
            TYPE_SYN_STREAM => {
                if payload.len() < 10 {
                    return Err(Error::Protocol("truncated SYN_STREAM".into()));
                }
                let block = self.headers.decompress(&payload[10..])?;
                Frame::SynStream {
                    stream_id: u32_at(payload, 0)? & 0x7fff_ffff,
                    associated_to: u32_at(payload, 4)? & 0x7fff_ffff,
                    priority: payload[8] >> 5,
                    flags,
                    headers: decode_header_block(&block)?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                if payload.len() < 4 {
                    return Err(Error::Protocol("truncated SYN_REPLY/HEADERS".into()));
                }
                let block = self.headers.decompress(&payload[4..])?;
                let stream_id = u32_at(payload, 0)? & 0x7fff_ffff;
                let headers = decode_header_block(&block)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: u32_at(payload, 0)? & 0x7fff_ffff,
                status: u32_at(payload, 4)?,
            },
            TYPE_SETTINGS => {
                let count = u32_at(payload, 0)? as usize;
                let mut entries = Vec::new();
                for i in 0..count.min(payload.len() / 8) {
                    let at = 4 + i * 8;
                    let id_flags = u32_at(payload, at)?;
                    entries.push((
                        (id_flags >> 24) as u8,
                        id_flags & 0x00ff_ffff,
                        u32_at(payload, at + 4)?,
                    ));
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping {
                id: u32_at(payload, 0)?,
            },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: u32_at(payload, 0)? & 0x7fff_ffff,
                status: u32_at(payload, 4).unwrap_or(0),
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: u32_at(payload, 0)? & 0x7fff_ffff,
                delta: u32_at(payload, 4)? & 0x7fff_ffff,
            },
            other => Frame::Unknown { kind: other },
        };
        Ok(Some(frame))
    }
}

/// The value of a header (names compare case-insensitively).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests;
