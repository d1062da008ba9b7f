//! Bounds on what a peer can make the decoder buffer or allocate.

/// Default bound on one whole frame, command line to terminating NUL: 10 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 10 * 1024 * 1024;
/// Default bound on the number of header lines in one frame.
pub const DEFAULT_MAX_HEADERS: usize = 1000;
/// Default bound on one header line as sent (name, colon and value, escapes not yet
/// resolved, EOL not counted): 10 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 10 * 1024;
/// Default bound on one frame body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Bounds the decoder enforces on every frame, including frames it has only partly received,
/// so that a peer cannot make it buffer unbounded data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Bound on one whole frame in bytes, command line to terminating NUL, body included.
    pub max_frame_bytes: usize,
    /// Bound on the number of header lines in one frame (repeated names count each time).
    pub max_headers: usize,
    /// Bound on one header line in bytes as sent, without its EOL.
    pub max_header_bytes: usize,
    /// Bound on one frame body in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}
