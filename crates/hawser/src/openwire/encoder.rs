//! How an OpenWire connection writes: the connection core's writer with
//! OpenWire's encoding (see `crate::connection::writer`).

use bytes::BytesMut;
use hawser_broker::Delivery;
use hawser_openwire::{
    Command, ConnectionError, Encoder, ExceptionInfo, KeepAliveInfo, WireSettings,
};

use super::mapping::dispatch;
use super::STORE_FAILURE_MESSAGE;
use crate::connection::{self, Encode};

/// OpenWire's encoding, in the negotiated wire format. It keeps the marshal
/// cache of what it has written.
pub struct OpenWireEncoder {
    codec: Encoder,
}

impl OpenWireEncoder {
    /// Writes in the format every connection starts with, until `setup`.
    pub fn new(initial: WireSettings) -> OpenWireEncoder {
        OpenWireEncoder {
            codec: Encoder::new(initial),
        }
    }

    fn write(&mut self, command: &Command, buf: &mut BytesMut) {
        // Nothing is appended on failure; the frame is lost, the connection goes on.
        if let Err(e) = self.codec.encode(command, buf) {
            tracing::warn!("OpenWire command not encoded: {e}");
        }
    }
}

impl Encode for OpenWireEncoder {
    type Frame = Command;
    type Setup = WireSettings;

    fn setup(&mut self, settings: WireSettings) {
        self.codec.set_settings(settings);
    }

    fn frame(&mut self, frame: &Command, buf: &mut BytesMut) {
        self.write(frame, buf);
    }

    fn delivery(&mut self, delivery: &Delivery, buf: &mut BytesMut) {
        self.write(&Command::MessageDispatch(dispatch(delivery)), buf);
    }

    fn store_failure(&mut self, buf: &mut BytesMut) {
        let error = ConnectionError {
            exception: Some(exception(
                "java.io.IOException",
                STORE_FAILURE_MESSAGE.to_owned(),
            )),
            ..ConnectionError::default()
        };
        self.write(&Command::ConnectionError(error), buf);
    }

    fn closed_by_operator(&mut self, reason: &str, buf: &mut BytesMut) {
        let error = ConnectionError {
            exception: Some(exception("javax.jms.JMSException", reason.to_owned())),
            ..ConnectionError::default()
        };
        self.write(&Command::ConnectionError(error), buf);
    }

    fn keep_alive(&mut self, buf: &mut BytesMut) {
        self.write(&Command::KeepAliveInfo(KeepAliveInfo::default()), buf);
    }
}

/// An exception a client turns into a JMSException: a class from our fixed
/// list and a message, no stack.
pub fn exception(class: &str, message: String) -> ExceptionInfo {
    ExceptionInfo {
        class_name: Some(class.to_owned()),
        message: Some(message),
        ..ExceptionInfo::default()
    }
}

/// An item for an OpenWire connection's writer.
pub type Out = connection::Out<OpenWireEncoder>;
