//! Java exceptions as they travel in ExceptionResponse, ConnectionError and MessageAck's
//! poison cause.
//!
//! Only strings cross the wire: a class name, a message and, with StackTraceEnabled, stack
//! frames and a cause. This crate keeps them as strings and never loads or instantiates
//! anything a peer names (the Java client's own reader does, which was CVE-2023-46604).

/// A Java `Throwable`, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionInfo {
    /// Fully qualified class name. The Java client rebuilds an exception of this class, so
    /// the broker uses the JMS ones (`javax.jms.InvalidDestinationException`...).
    pub class_name: Option<String>,
    /// `getMessage()`.
    pub message: Option<String>,
    /// Stack frames, innermost first; sent only when StackTraceEnabled was negotiated
    /// (dropped when encoding without it).
    pub stack_trace: Vec<StackFrame>,
    /// The cause; sent only with StackTraceEnabled, like the frames.
    pub cause: Option<Box<ExceptionInfo>>,
}

/// One `StackTraceElement`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackFrame {
    /// Declaring class.
    pub class_name: Option<String>,
    /// Method.
    pub method_name: Option<String>,
    /// Source file, if known.
    pub file_name: Option<String>,
    /// Line; -1 unknown, -2 native method.
    pub line_number: i32,
}

impl ExceptionInfo {
    /// An exception of `class_name` with `message`, no frames and no cause.
    pub fn new(class_name: impl Into<String>, message: impl Into<String>) -> Self {
        ExceptionInfo {
            class_name: Some(class_name.into()),
            message: Some(message.into()),
            stack_trace: Vec::new(),
            cause: None,
        }
    }
}
