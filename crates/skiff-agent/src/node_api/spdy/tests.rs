//! Tests for the SPDY/3.1 codec: the dictionary, round trips across splits, frames built by hand
//! per the spec, peer-readable compression, malformed input.

use super::*;

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

#[test]
fn the_dictionary_is_the_spec_one() {
    assert_eq!(dictionary().len(), 1423);
    assert_eq!(adler32(dictionary()), 0xe3c6a7c2);
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_frame_round_trips_across_arbitrary_splits() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 2,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: vec![],
        },
        Frame::Headers {
            stream_id: 3,
            flags: 0,
            headers: headers(&[("x", "y")]),
        },
        Frame::Data {
            stream_id: 3,
            flags: 0,
            data: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        },
        Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: vec![],
        },
        Frame::RstStream {
            stream_id: 3,
            status: RST_CANCEL,
        },
        Frame::Settings {
            flags: 0,
            entries: vec![(0, 7, 65536)],
        },
        Frame::Ping { id: 42 },
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 1000,
        },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: 0,
        },
    ];
    let mut compressor = HeaderCompressor::new();
    let mut wire = Vec::new();
    for frame in &frames {
        wire.extend(encode(frame, &mut compressor).expect("encode"));
    }
    for chunk in [1usize, 3, 7, 64, wire.len()] {
        let mut decoder = Decoder::new();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().expect("decode") {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, frames, "chunks of {chunk}");
    }
}

/// A SYN_STREAM built by hand per the spec, with headers compressed by an independent zlib
/// stream primed with the dictionary (as Go's framer does), then a second one reusing the
/// same compression context.
#[test]
fn decodes_hand_built_frames() {
    let mut peer = flate2::Compress::new(flate2::Compression::default(), true);
    peer.set_dictionary(dictionary()).expect("dictionary");
    let mut compress = |block: &[u8]| {
        let mut out = Vec::with_capacity(block.len() + 256);
        peer.compress_vec(block, &mut out, flate2::FlushCompress::Sync)
            .expect("compress");
        out
    };
    let mut block = Vec::new();
    block.extend_from_slice(&3u32.to_be_bytes());
    for (name, value) in [("port", "8080"), ("requestid", "5"), ("streamtype", "data")] {
        block.extend_from_slice(&(name.len() as u32).to_be_bytes());
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(&(value.len() as u32).to_be_bytes());
        block.extend_from_slice(value.as_bytes());
    }
    let mut wire = Vec::new();
    for stream_id in [5u32, 7] {
        let compressed = compress(&block);
        let length = 10 + compressed.len();
        wire.extend_from_slice(&[0x80, 0x03, 0x00, 0x01, 0x00]);
        wire.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
        wire.extend_from_slice(&stream_id.to_be_bytes());
        wire.extend_from_slice(&0u32.to_be_bytes());
        wire.extend_from_slice(&[0x00, 0x00]);
        wire.extend_from_slice(&compressed);
    }
    // A data frame: stream 5, FIN, "hi".
    wire.extend_from_slice(&[0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x02, b'h', b'i']);
    // PING id 9.
    wire.extend_from_slice(&[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 9]);
    let mut decoder = Decoder::new();
    decoder.push(&wire);
    for stream_id in [5u32, 7] {
        match decoder.next_frame().expect("decode") {
            Some(Frame::SynStream {
                stream_id: id,
                headers,
                ..
            }) => {
                assert_eq!(id, stream_id);
                assert_eq!(header(&headers, "streamType"), Some("data"));
                assert_eq!(header(&headers, "port"), Some("8080"));
                assert_eq!(header(&headers, "requestID"), Some("5"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        decoder.next_frame().expect("data"),
        Some(Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: b"hi".to_vec()
        })
    );
    assert_eq!(
        decoder.next_frame().expect("ping"),
        Some(Frame::Ping { id: 9 })
    );
    assert_eq!(decoder.next_frame().expect("end"), None);
}

/// Our compressed SYN_REPLY is readable by an independent zlib inflater given the dictionary.
#[test]
fn encodes_frames_a_peer_can_read() {
    let mut compressor = HeaderCompressor::new();
    let bytes = encode(
        &Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: headers(&[("a", "b")]),
        },
        &mut compressor,
    )
    .expect("encode");
    assert_eq!(&bytes[..4], &[0x80, 0x03, 0x00, 0x02]);
    let length = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
    assert_eq!(length, bytes.len() - 8);
    assert_eq!(&bytes[8..12], &1u32.to_be_bytes());
    let mut inflater = flate2::Decompress::new(true);
    let mut out = Vec::with_capacity(1024);
    let first = inflater.decompress_vec(&bytes[12..], &mut out, flate2::FlushDecompress::Sync);
    assert!(first.is_err_and(|e| e.needs_dictionary() == Some(adler32(dictionary()))));
    inflater.set_dictionary(dictionary()).expect("dictionary");
    let consumed = inflater.total_in() as usize;
    inflater
        .decompress_vec(
            &bytes[12 + consumed..],
            &mut out,
            flate2::FlushDecompress::Sync,
        )
        .expect("inflate");
    assert_eq!(
        decode_header_block(&out).expect("block"),
        headers(&[("a", "b")])
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0x80, 0x02, 0x00, 0x01, 0, 0, 0, 0],       // SPDY/2
        vec![0x80, 0x03, 0x00, 0x01, 0, 0, 0, 2, 0, 0], // truncated SYN_STREAM
        vec![
            0x80, 0x03, 0x00, 0x01, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xde, 0xad,
        ], // bad zlib
        vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 2, 0, 0], // short RST
    ];
    for bytes in cases {
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        assert!(decoder.next_frame().is_err(), "{bytes:?}");
    }
    assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
}
