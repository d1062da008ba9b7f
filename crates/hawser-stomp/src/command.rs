//! The STOMP command that starts every frame.

use std::fmt;

/// A frame's command: the first line of every frame, matched case-sensitively.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Command {
    // Client frames.
    Connect,
    /// The 1.1+ name for `CONNECT`; escaped (or rather, not escaped) the same way.
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    // Server frames.
    Connected,
    Message,
    Receipt,
    Error,
}

impl Command {
    /// Every command, for tests and for callers that enumerate them.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// Length of the longest command name (`UNSUBSCRIBE`). The decoder uses it to reject a
    /// command line that cannot be valid without waiting for its end of line.
    pub const MAX_LEN: usize = 11;

    /// The command as it appears on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL). Case-sensitive: `send` is not a command.
    pub fn parse(s: &[u8]) -> Option<Command> {
        Some(match s {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"CONNECTED" => Command::Connected,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// Whether this frame's headers are escaped in 1.1+. `CONNECT` and `CONNECTED` are not, so
    /// that they read the same before and after version negotiation; `STOMP` is the new name of
    /// `CONNECT` and is sent before negotiation too, so it is treated the same way.
    pub fn escapes_headers(&self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_inverts_as_str() {
        for command in Command::ALL {
            assert_eq!(Command::parse(command.as_str().as_bytes()), Some(command));
            assert!(command.as_str().len() <= Command::MAX_LEN);
        }
    }

    #[test]
    fn parse_is_case_sensitive_and_exact() {
        assert_eq!(Command::parse(b"send"), None);
        assert_eq!(Command::parse(b"Send"), None);
        assert_eq!(Command::parse(b"SEND "), None);
        assert_eq!(Command::parse(b" SEND"), None);
        assert_eq!(Command::parse(b""), None);
        assert_eq!(Command::parse(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn only_connect_frames_skip_escaping() {
        let unescaped: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| !c.escapes_headers())
            .collect();
        assert_eq!(
            unescaped,
            [Command::Connect, Command::Stomp, Command::Connected]
        );
    }
}
