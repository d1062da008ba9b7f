//! Property tests for the codec: round trips, chunking independence, and robustness against
//! arbitrary bytes.

use bytes::BytesMut;
use hawser_stomp::{
    encode, encode_heartbeat, Command, DecodeError, Decoder, Frame, Item, Limits, Version,
    CONTENT_LENGTH,
};
use proptest::prelude::*;

// --- Generators ------------------------------------------------------------------------------

/// Characters for header strings in escaped frames (1.1+, not `CONNECT`): anything but NUL
/// (which no version can carry in a header), with the bytes that need escaping made common.
fn escaped_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => any::<char>().prop_filter("NUL ends a frame", |c| *c != '\0'),
        1 => Just('\\'),
        1 => Just(':'),
        1 => Just('\n'),
        1 => Just('\r'),
        2 => Just('a'),
    ]
}

/// Characters for header names in unescaped frames (1.0, `CONNECT`): no colon, EOL or NUL.
fn raw_name_char() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("not representable unescaped", |c| {
        !matches!(c, ':' | '\n' | '\r' | '\0')
    })
}

/// Characters for header values in unescaped frames: no EOL, no NUL.
fn raw_value_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>()
            .prop_filter("not representable unescaped", |c| !matches!(c, '\n' | '\r' | '\0')),
        1 => Just(':'),
        1 => Just('\\'),
    ]
}

fn string_of(
    chars: impl Strategy<Value = char> + 'static,
    len: std::ops::Range<usize>,
) -> BoxedStrategy<String> {
    proptest::collection::vec(chars, len)
        .prop_map(String::from_iter)
        .boxed()
}

/// Headers that `encode` can represent for this command and version, with names that never
/// collide with `content-length`.
fn headers(command: Command, version: Version) -> BoxedStrategy<Vec<(String, String)>> {
    let escaped = command.escapes_headers() && version > Version::V1_0;
    let header = if escaped {
        let value = string_of(escaped_char(), 0..12).prop_map(move |mut v| {
            // 1.1 has no escape for CR, and a CR right before the LF reads as part of CRLF.
            if version == Version::V1_1 {
                while v.ends_with('\r') {
                    v.pop();
                }
            }
            v
        });
        (string_of(escaped_char(), 1..12), value).boxed()
    } else {
        (
            string_of(raw_name_char(), 1..12),
            string_of(raw_value_char(), 0..12),
        )
            .boxed()
    };
    proptest::collection::vec(header, 0..6)
        .prop_map(|headers| {
            headers
                .into_iter()
                .filter(|(name, _)| name != CONTENT_LENGTH)
                .collect()
        })
        .boxed()
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(0u8)], 0..64)
}

fn command() -> impl Strategy<Value = Command> {
    proptest::sample::select(Command::ALL.to_vec())
}

fn version() -> impl Strategy<Value = Version> {
    proptest::sample::select(Version::ALL.to_vec())
}

/// A frame `encode` can represent for `version`.
fn frame(version: Version) -> impl Strategy<Value = Frame> {
    command().prop_flat_map(move |command| {
        (headers(command, version), body()).prop_map(move |(headers, body)| Frame {
            command,
            headers: headers.into_iter().collect(),
            body: body.into(),
        })
    })
}

/// One element of a byte stream, and how it is put on the wire.
#[derive(Clone, Debug)]
enum Piece {
    /// Encoded by `encode`.
    Frame(Frame),
    /// Encoded by `encode`, then with CRLF for every EOL before the body.
    CrlfFrame(Frame),
    /// Written by hand without `content-length`, so its (NUL-free) body ends at the NUL.
    BareFrame(Frame),
    /// `encode_heartbeat`.
    HeartBeat,
    /// A CRLF heart-beat.
    CrlfHeartBeat,
}

fn piece(version: Version) -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => frame(version).prop_map(Piece::Frame),
        1 => frame(version).prop_map(Piece::CrlfFrame),
        1 => frame(version).prop_map(|mut f| {
            f.body = f.body.iter().map(|&b| b.max(1)).collect::<Vec<u8>>().into();
            Piece::BareFrame(f)
        }),
        1 => Just(Piece::HeartBeat),
        1 => Just(Piece::CrlfHeartBeat),
    ]
}

// --- Helpers ---------------------------------------------------------------------------------

/// The frame the decoder returns for `frame` after `encode`, which adds `content-length`.
fn with_content_length(frame: &Frame) -> Frame {
    let mut frame = frame.clone();
    if !frame.body.is_empty() && frame.header(CONTENT_LENGTH).is_none() {
        let len = frame.body.len().to_string();
        frame.push_header(CONTENT_LENGTH, len);
    }
    frame
}

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(frame, version, &mut buf);
    buf.to_vec()
}

/// Writes `piece` and returns the item it should decode to.
fn write_piece(piece: &Piece, version: Version, out: &mut Vec<u8>) -> Item {
    match piece {
        Piece::Frame(f) => {
            out.extend_from_slice(&encoded(f, version));
            Item::Frame(with_content_length(f))
        }
        Piece::CrlfFrame(f) => {
            let wire = encoded(f, version);
            // Header lines are never empty, so the first blank line ends the headers.
            let head_end = wire.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
            for &b in &wire[..head_end] {
                if b == b'\n' {
                    out.push(b'\r');
                }
                out.push(b);
            }
            out.extend_from_slice(&wire[head_end..]);
            Item::Frame(with_content_length(f))
        }
        Piece::BareFrame(f) => {
            let head = Frame {
                body: Default::default(),
                ..f.clone()
            };
            let wire = encoded(&head, version);
            out.extend_from_slice(&wire[..wire.len() - 1]);
            out.extend_from_slice(&f.body);
            out.push(0);
            Item::Frame(f.clone())
        }
        Piece::HeartBeat => {
            let mut buf = BytesMut::new();
            encode_heartbeat(&mut buf);
            out.extend_from_slice(&buf);
            Item::HeartBeat
        }
        Piece::CrlfHeartBeat => {
            out.extend_from_slice(b"\r\n");
            Item::HeartBeat
        }
    }
}

/// How a decode run ended.
#[derive(Debug, PartialEq)]
enum End {
    /// `Ok(None)` with these bytes left over.
    Incomplete(Vec<u8>),
    Error,
}

fn decoder(limits: Limits, version: Version) -> Decoder {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    decoder
}

/// Decodes `input` from one buffer holding all of it.
fn decode_whole(limits: Limits, version: Version, input: &[u8]) -> (Vec<Item>, End) {
    let mut decoder = decoder(limits, version);
    let mut buf = BytesMut::from(input);
    let mut items = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {
                assert!(
                    buf.len() <= limits.max_frame_bytes,
                    "buffered {}",
                    buf.len()
                );
                return (items, End::Incomplete(buf.to_vec()));
            }
            Err(_) => return (items, End::Error),
        }
    }
}

/// Decodes `input` fed in chunks of the given sizes (cycled), draining after each chunk.
fn decode_chunked(
    limits: Limits,
    version: Version,
    input: &[u8],
    chunk_sizes: &[usize],
) -> (Vec<Item>, End) {
    let mut decoder = decoder(limits, version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = input;
    for &size in chunk_sizes.iter().cycle() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        buf.extend_from_slice(chunk);
        rest = tail;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => {
                    assert!(
                        buf.len() <= limits.max_frame_bytes,
                        "buffered {}",
                        buf.len()
                    );
                    break;
                }
                Err(_) => return (items, End::Error),
            }
        }
        if rest.is_empty() {
            return (items, End::Incomplete(buf.to_vec()));
        }
    }
    unreachable!("chunk sizes are never empty")
}

/// Whether decoding `encode(frame)` must give `frame` back. Not quite always: where CR is not
/// escaped, a value ending in CR is written as `value\r\n` and reads back as a CRLF.
fn reencodable(frame: &Frame, version: Version) -> bool {
    let cr_escaped = frame.command.escapes_headers() && version == Version::V1_2;
    cr_escaped || !frame.headers.iter().any(|(_, v)| v.ends_with('\r'))
}

/// Checks that a decoded frame is within limits and survives a round trip.
fn check_decoded(frame: &Frame, limits: &Limits, version: Version) {
    assert!(frame.headers.len() <= limits.max_headers);
    assert!(frame.body.len() <= limits.max_body_bytes);
    if reencodable(frame, version) {
        let (items, end) = decode_whole(Limits::default(), version, &encoded(frame, version));
        assert_eq!(items, [Item::Frame(with_content_length(frame))]);
        assert_eq!(end, End::Incomplete(Vec::new()));
    }
}

/// Small limits so that generated input hits every one of them.
const SMALL: Limits = Limits {
    max_frame_bytes: 128,
    max_headers: 4,
    max_header_bytes: 24,
    max_body_bytes: 64,
};

/// Something that looks like a frame but may break any rule or limit.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let eol = prop_oneof![3 => Just(&b"\n"[..]), 1 => Just(&b"\r\n"[..])];
    let command = prop_oneof![
        9 => command().prop_map(|c| c.as_str().as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..14),
    ];
    let name = prop_oneof![
        12 => proptest::sample::select(vec![&b"destination"[..], b"id", b"receipt", b"a\\cb"])
            .prop_map(<[u8]>::to_vec),
        1 => proptest::sample::select(vec![&b"content-length"[..], b"x\\t", b""])
            .prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..30),
    ];
    let value = prop_oneof![
        2 => (0usize..100).prop_map(|n| n.to_string().into_bytes()),
        8 => proptest::sample::select(
            vec![&b"/queue/a"[..], b"a\\nb\\\\", b"\\r", b"x:y", b"-1", b""]
        )
        .prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..30),
    ];
    let header = (
        name,
        prop_oneof![19 => Just(true), 1 => Just(false)],
        value,
        eol.clone(),
    )
        .prop_map(|(name, colon, value, eol)| {
            let mut line = name;
            if colon {
                line.push(b':');
            }
            line.extend_from_slice(&value);
            line.extend_from_slice(eol);
            line
        });
    (
        command,
        eol.clone(),
        proptest::collection::vec(header, 0..6),
        eol,
        // NUL-free, so that without content-length the frame ends where it should.
        proptest::collection::vec(1u8..=255, 0..80),
        prop_oneof![9 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(command, eol1, headers, eol2, body, nul)| {
            let mut out = command;
            out.extend_from_slice(eol1);
            out.extend(headers.concat());
            out.extend_from_slice(eol2);
            out.extend(body);
            if nul {
                out.push(0);
            }
            out
        })
}

/// Input that is mostly STOMP-shaped, so that it gets past the command line and into every
/// rule and limit.
fn stompish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => frame_like_bytes(),
        1 => proptest::collection::vec(any::<u8>(), 1..8),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
}

// --- Properties ------------------------------------------------------------------------------

proptest! {
    /// encode then decode gives the frame back, plus the `content-length` encode adds.
    #[test]
    fn encode_then_decode_round_trips(
        (version, frame) in version().prop_flat_map(|v| (Just(v), frame(v)))
    ) {
        let wire = encoded(&frame, version);
        let (items, end) = decode_whole(Limits::default(), version, &wire);
        prop_assert_eq!(items, vec![Item::Frame(with_content_length(&frame))]);
        prop_assert_eq!(end, End::Incomplete(Vec::new()));
    }

    /// A stream of frames and heart-beats decodes to the same items however it is chunked.
    #[test]
    fn any_split_decodes_the_same(
        (version, pieces) in version().prop_flat_map(|v| {
            (Just(v), proptest::collection::vec(piece(v), 1..8))
        }),
        chunk_sizes in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let mut wire = Vec::new();
        let expected: Vec<Item> =
            pieces.iter().map(|p| write_piece(p, version, &mut wire)).collect();
        let whole = decode_whole(Limits::default(), version, &wire);
        prop_assert_eq!(&whole.0, &expected);
        prop_assert_eq!(&whole.1, &End::Incomplete(Vec::new()));
        let chunked = decode_chunked(Limits::default(), version, &wire, &chunk_sizes);
        prop_assert_eq!(chunked, whole);
    }

    /// Arbitrary bytes never panic, never leave more than a frame's worth buffered as
    /// "incomplete", decode the same whole or chunked, and every frame they yield is within
    /// limits and round-trips.
    #[test]
    fn arbitrary_bytes_are_handled(
        input in prop_oneof![
            4 => stompish_bytes(),
            1 => proptest::collection::vec(any::<u8>(), 0..600),
        ],
        version in version(),
        chunk_sizes in proptest::collection::vec(1usize..64, 1..10),
    ) {
        let whole = decode_whole(SMALL, version, &input);
        for item in &whole.0 {
            if let Item::Frame(frame) = item {
                check_decoded(frame, &SMALL, version);
            }
        }
        let chunked = decode_chunked(SMALL, version, &input, &chunk_sizes);
        prop_assert_eq!(chunked, whole);
    }

    /// A frame that never ends is refused before the decoder has buffered more than a frame.
    #[test]
    fn endless_frames_fail_early(
        prefix in prop_oneof![
            Just(&b"SEND\n"[..]),
            Just(&b"SEND\na:b\n\n"[..]),
            Just(&b"SEND\nname:"[..]),
        ],
        filler in any::<u8>(),
    ) {
        let mut decoder = Decoder::new(SMALL);
        let mut buf = BytesMut::from(prefix);
        let err = loop {
            match decoder.decode(&mut buf) {
                Ok(None) => {
                    prop_assert!(buf.len() <= SMALL.max_frame_bytes);
                    buf.extend_from_slice(&[filler]);
                }
                Ok(Some(_)) => {}
                Err(err) => break err,
            }
        };
        prop_assert!(buf.len() <= SMALL.max_frame_bytes + 1);
        // A NUL filler ends the frame and then reads as a command, or inside a header
        // line is refused as soon as it arrives; anything else grows a header line or a
        // body until a limit stops it.
        let nul_in_header = filler == 0 && !prefix.ends_with(b"\n\n");
        prop_assert!(
            matches!(
                err,
                DecodeError::HeaderTooLong { .. }
                    | DecodeError::BodyTooLarge { .. }
                    | DecodeError::FrameTooLarge { .. }
                    | DecodeError::UnknownCommand(_)
            ) || (nul_in_header && matches!(err, DecodeError::InvalidHeaderLine(_))),
            "{:?}",
            err
        );
    }
}
