//! Transaction ids: the engine's name of each OpenWire transaction (local
//! ones per connection, XA ones by xid, the same from every connection) and
//! the replies particular to XA.

use hawser_openwire::{self as ow, DataStructure, TransactionId};

use super::SessionError;

/// XA's prepare votes (`javax.transaction.xa.XAResource`).
pub(super) const XA_OK: i32 = 0;
pub(super) const XA_RDONLY: i32 = 3;
/// The longest global transaction id and branch qualifier XA allows.
const XA_MAX_ID_BYTES: usize = 64;

/// What a command's reply says beyond "done".
pub(super) enum Reply {
    /// An IntegerResponse (XA prepare's vote).
    Integer(i32),
    /// A DataArrayResponse (XA recover's transaction ids).
    Data(Vec<DataStructure>),
}

/// The engine's name of a transaction. A local one's is unique within its
/// connection; an XA one's is its xid, the same from every connection (and
/// [`xa_id`] reads it back).
pub(super) fn transaction_name(t: &TransactionId) -> Result<String, SessionError> {
    match t {
        TransactionId::Local(l) => Ok(format!(
            "local:{}:{}",
            l.connection_id.as_ref().map_or("", |c| c.value.as_str()),
            l.value
        )),
        TransactionId::Xa(x) => {
            if x.global_transaction_id.len() > XA_MAX_ID_BYTES
                || x.branch_qualifier.len() > XA_MAX_ID_BYTES
            {
                return Err(SessionError::Invalid {
                    what: "XATransactionId",
                    reason: format!("ids are at most {XA_MAX_ID_BYTES} bytes"),
                });
            }
            Ok(format!(
                "xa:{}:{}:{}",
                x.format_id,
                hex(&x.global_transaction_id),
                hex(&x.branch_qualifier)
            ))
        }
    }
}

/// The XA transaction id a [`transaction_name`] was made from.
pub(super) fn xa_id(name: &str) -> Option<ow::XaTransactionId> {
    let mut parts = name.strip_prefix("xa:")?.split(':');
    let format_id = parts.next()?.parse().ok()?;
    let global = unhex(parts.next()?)?;
    let branch = unhex(parts.next()?)?;
    parts.next().is_none().then(|| ow::XaTransactionId {
        format_id,
        global_transaction_id: global.into(),
        branch_qualifier: branch.into(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xa_transaction_name_reads_back_as_its_xid() {
        let x = ow::XaTransactionId {
            format_id: -7,
            global_transaction_id: vec![0, 1, 0xab, 0xff].into(),
            branch_qualifier: vec![].into(),
        };
        let name = transaction_name(&TransactionId::Xa(x.clone())).unwrap();
        assert_eq!(xa_id(&name), Some(x));
        assert_eq!(xa_id("local:c:1"), None);
        assert_eq!(xa_id("xa:1:0:"), None);
    }

    #[test]
    fn oversized_xa_ids_are_refused() {
        let x = ow::XaTransactionId {
            format_id: 1,
            global_transaction_id: vec![0; XA_MAX_ID_BYTES + 1].into(),
            branch_qualifier: vec![].into(),
        };
        assert!(transaction_name(&TransactionId::Xa(x)).is_err());
    }
}
