//! Replies to commands sent with `response_required`: each carries the request's command id
//! as its correlation id.

use crate::cursor::ReadError;
use crate::data_structure::DataStructure;
use crate::exception::ExceptionInfo;
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// The command succeeded (type 30).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Response {
    /// The reply's own number.
    pub command_id: i32,
    /// The sender wants a reply (never, for a reply).
    pub response_required: bool,
    /// The request's command id.
    pub correlation_id: i32,
}

/// The command failed (type 31); the Java client throws the exception.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionResponse {
    /// The reply's own number.
    pub command_id: i32,
    /// The sender wants a reply (never, for a reply).
    pub response_required: bool,
    /// The request's command id.
    pub correlation_id: i32,
    /// Why.
    pub exception: Option<ExceptionInfo>,
}

/// The command succeeded with one data structure as its result (type 32).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataResponse {
    /// The reply's own number.
    pub command_id: i32,
    /// The sender wants a reply (never, for a reply).
    pub response_required: bool,
    /// The request's command id.
    pub correlation_id: i32,
    /// The result.
    pub data: Option<DataStructure>,
}

/// The command succeeded with several data structures (type 33), e.g. the XA transaction
/// ids an XA recover asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataArrayResponse {
    /// The reply's own number.
    pub command_id: i32,
    /// The sender wants a reply (never, for a reply).
    pub response_required: bool,
    /// The request's command id.
    pub correlation_id: i32,
    /// The results.
    pub data: Option<Vec<DataStructure>>,
}

/// The command succeeded with a number (type 34), e.g. an XA prepare's vote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntegerResponse {
    /// The reply's own number.
    pub command_id: i32,
    /// The sender wants a reply (never, for a reply).
    pub response_required: bool,
    /// The request's command id.
    pub correlation_id: i32,
    /// The number.
    pub result: i32,
}

impl Response {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(Response {
            command_id,
            response_required,
            correlation_id: r.i32()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.i32(self.correlation_id);
        Ok(())
    }
}

impl ExceptionResponse {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(ExceptionResponse {
            command_id,
            response_required,
            correlation_id: r.i32()?,
            exception: r.throwable()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.i32(self.correlation_id);
        w.throwable(self.exception.as_ref())
    }
}

impl DataResponse {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(DataResponse {
            command_id,
            response_required,
            correlation_id: r.i32()?,
            data: r.nested_any()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.i32(self.correlation_id);
        w.nested(self.data.as_ref())
    }
}

impl DataArrayResponse {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(DataArrayResponse {
            command_id,
            response_required,
            correlation_id: r.i32()?,
            data: r.array("DataArrayResponse.data")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.i32(self.correlation_id);
        w.array(self.data.as_deref())
    }
}

impl IntegerResponse {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(IntegerResponse {
            command_id,
            response_required,
            correlation_id: r.i32()?,
            result: r.i32()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.i32(self.correlation_id);
        w.i32(self.result);
        Ok(())
    }
}
