//! Network connector URIs come from the configuration and the command line:
//! the parser must refuse what it cannot use, never panic, and what it
//! accepts must name at least one peer each link can dial.
#![no_main]

use hawser::network::{parse_connector, ConnectorKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(connector) = parse_connector(&text) else {
        return;
    };
    let links = connector.links();
    match connector.kind {
        ConnectorKind::Static => assert_eq!(links.len(), connector.peers.len()),
        ConnectorKind::MasterSlave => assert_eq!(links.len(), 1),
    }
    assert!(!connector.peers.is_empty());
    let o = &connector.options;
    assert!(o.message_ttl >= 1 && o.consumer_ttl >= 1 && o.prefetch_size >= 1);
});
