//! Transaction ids (local and XA) and TransactionInfo, the command that begins, prepares,
//! commits, rolls back, recovers and forgets them.

use bytes::Bytes;

use crate::cursor::ReadError;
use crate::data_structure::type_id;
use crate::ids::ConnectionId;
use crate::reader::Reader;
use crate::writer::Writer;
use crate::{DecodeError, EncodeError};

/// A transaction's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionId {
    /// A JMS session's local transaction (type 111).
    Local(LocalTransactionId),
    /// An XA transaction branch (type 112).
    Xa(XaTransactionId),
}

/// A local transaction: a number the connection assigns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LocalTransactionId {
    /// The transaction's number within the connection.
    pub value: i64,
    /// The connection (cached).
    pub connection_id: Option<ConnectionId>,
}

/// An XA branch id (`javax.transaction.xa.Xid`), opaque to the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct XaTransactionId {
    /// The transaction manager's format id.
    pub format_id: i32,
    /// The global transaction id.
    pub global_transaction_id: Bytes,
    /// The branch qualifier.
    pub branch_qualifier: Bytes,
}

impl TransactionId {
    pub(crate) fn type_id(&self) -> u8 {
        match self {
            TransactionId::Local(_) => type_id::LOCAL_TRANSACTION_ID,
            TransactionId::Xa(_) => type_id::XA_TRANSACTION_ID,
        }
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            TransactionId::Local(id) => {
                w.long(id.value);
                w.cached(id.connection_id.as_ref())
            }
            TransactionId::Xa(id) => {
                w.i32(id.format_id);
                w.bytes(Some(&id.global_transaction_id))?;
                w.bytes(Some(&id.branch_qualifier))
            }
        }
    }
}

impl LocalTransactionId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(LocalTransactionId {
            value: r.long()?,
            connection_id: r.cached("LocalTransactionId.connectionId")?,
        })
    }
}

impl XaTransactionId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(XaTransactionId {
            format_id: r.i32()?,
            global_transaction_id: r.bytes()?.ok_or(DecodeError::NullField(
                "XATransactionId.globalTransactionId",
            ))?,
            branch_qualifier: r
                .bytes()?
                .ok_or(DecodeError::NullField("XATransactionId.branchQualifier"))?,
        })
    }
}

/// What a [`TransactionInfo`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransactionType {
    /// Start a transaction (0).
    #[default]
    Begin,
    /// XA prepare (1); answered with an IntegerResponse.
    Prepare,
    /// Commit without a prepare (2).
    CommitOnePhase,
    /// Commit a prepared transaction (3).
    CommitTwoPhase,
    /// Roll back (4).
    Rollback,
    /// List prepared XA transactions (5); answered with a DataArrayResponse.
    Recover,
    /// Forget a heuristically completed XA transaction (6).
    Forget,
    /// XA end (7).
    End,
    /// A code Java does not define, kept as sent.
    Other(i8),
}

impl TransactionType {
    fn from_code(code: i8) -> Self {
        match code {
            0 => TransactionType::Begin,
            1 => TransactionType::Prepare,
            2 => TransactionType::CommitOnePhase,
            3 => TransactionType::CommitTwoPhase,
            4 => TransactionType::Rollback,
            5 => TransactionType::Recover,
            6 => TransactionType::Forget,
            7 => TransactionType::End,
            other => TransactionType::Other(other),
        }
    }

    fn code(self) -> i8 {
        match self {
            TransactionType::Begin => 0,
            TransactionType::Prepare => 1,
            TransactionType::CommitOnePhase => 2,
            TransactionType::CommitTwoPhase => 3,
            TransactionType::Rollback => 4,
            TransactionType::Recover => 5,
            TransactionType::Forget => 6,
            TransactionType::End => 7,
            TransactionType::Other(code) => code,
        }
    }
}

/// A transaction operation (type 7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionInfo {
    /// The command's number, for the reply's correlation id.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The connection (cached).
    pub connection_id: Option<ConnectionId>,
    /// The transaction (cached); null for an XA recover.
    pub transaction_id: Option<TransactionId>,
    /// The operation.
    pub kind: TransactionType,
}

impl TransactionInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(TransactionInfo {
            command_id,
            response_required,
            connection_id: r.cached("TransactionInfo.connectionId")?,
            transaction_id: r.cached("TransactionInfo.transactionId")?,
            kind: TransactionType::from_code(r.i8()?),
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.connection_id.as_ref())?;
        w.cached(self.transaction_id.as_ref())?;
        w.i8(self.kind.code());
        Ok(())
    }
}
