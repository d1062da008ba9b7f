//! How a message records its way through the network: the brokers it has
//! passed and the hops it has made, as properties a selector can test. A
//! message is stamped as it leaves a broker, whichever side moves it: a
//! link sending to its peer, or a peer's duplex link pulling from here.

use std::sync::Arc;

use bytes::Bytes;
use hawser_broker::store_codec::encode_record;
use hawser_broker::{MessageData, PropertyValue, StoreOp};

/// The property listing the brokers a message has passed, as `,a,b,`.
pub const PATH_PROPERTY: &str = "HawserNetworkPath";
/// The property counting the hops a message has made.
pub const HOPS_PROPERTY: &str = "HawserNetworkHops";

/// `data` as it leaves broker `local`: `local` added to its path, one more
/// hop counted.
pub fn leaving(data: &MessageData, local: &str) -> MessageData {
    let mut data = data.clone();
    let path = match data.property(PATH_PROPERTY) {
        Some(PropertyValue::String(p)) => format!("{p}{local},"),
        _ => format!(",{local},"),
    };
    let hops = match data.property(HOPS_PROPERTY) {
        Some(PropertyValue::Int(h)) => h.saturating_add(1),
        _ => 1,
    };
    let props = &mut data.fields.properties;
    props.retain(|(k, _)| &**k != PATH_PROPERTY && &**k != HOPS_PROPERTY);
    props.push((
        Arc::from(PATH_PROPERTY),
        PropertyValue::String(Arc::from(path)),
    ));
    props.push((Arc::from(HOPS_PROPERTY), PropertyValue::Int(hops)));
    data
}

/// The forwarded form of `data` leaving `local`: one `Enqueue` in the
/// store's record format (what `FORWARD_HEADER` frames carry).
pub fn forwarded_record(data: &MessageData, local: &str) -> Bytes {
    encode_record(&[StoreOp::<MessageData>::Enqueue {
        message: leaving(data, local),
        targets: Vec::new(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hawser_broker::{Destination, NewMessage};

    fn data(props: Vec<(Arc<str>, PropertyValue)>) -> MessageData {
        let mut m = NewMessage::new(Destination::queue("q"), Bytes::from_static(b"x"));
        m.fields.properties = props;
        MessageData::accept(1, m, 1)
    }

    #[test]
    fn a_message_gathers_its_path_and_hops() {
        let first = leaving(&data(Vec::new()), "a");
        assert_eq!(
            first.property(PATH_PROPERTY),
            Some(&PropertyValue::String(Arc::from(",a,")))
        );
        assert_eq!(first.property(HOPS_PROPERTY), Some(&PropertyValue::Int(1)));
        let second = leaving(&first, "b");
        assert_eq!(
            second.property(PATH_PROPERTY),
            Some(&PropertyValue::String(Arc::from(",a,b,")))
        );
        assert_eq!(second.property(HOPS_PROPERTY), Some(&PropertyValue::Int(2)));
        assert_eq!(second.fields.properties.len(), 2, "replaced, not repeated");
    }
}
