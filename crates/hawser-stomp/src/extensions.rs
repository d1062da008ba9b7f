//! Headers Hawser adds to STOMP, shared by the broker and the client so both
//! sides spell them the same way. Other clients may ignore them.

/// SEND: the producer's id, chosen by the client; with [`PRODUCER_SEQ_HEADER`]
/// it lets the broker recognise a resend after a failover. Kept on the message.
pub const PRODUCER_HEADER: &str = "hawser-producer";
/// SEND: the message's sequence number within its producer.
pub const PRODUCER_SEQ_HEADER: &str = "hawser-seq";
/// SEND from a network link: `1` says the body is the whole message in
/// Hawser's store record format (typed properties, body kind, reply-to,
/// timestamp, everything a STOMP header would flatten), not its body.
/// SUBSCRIBE from a duplex link: `1` asks for MESSAGE frames whose bodies are
/// such records, as the message leaves this broker (its network path and hop
/// count updated).
pub const FORWARD_HEADER: &str = "hawser-forward";
/// SUBSCRIBE from a network link: the brokers the demand it serves has
/// crossed, comma-separated. The subscription is the link's, and its
/// consumer advisories say so.
pub const NETWORK_PATH_HEADER: &str = "hawser-network-path";
/// CONNECTED: the broker's name, as network paths spell it.
pub const BROKER_NAME_HEADER: &str = "hawser-broker";
/// CONNECTED: the name of the store the broker serves (kept with the store,
/// so the same after a restart or a slave's takeover): message ids are
/// unique within it.
pub const STORE_NAME_HEADER: &str = "hawser-store";
/// CONNECTED, and cluster updates: the broker URIs a client may fail over to, comma-separated.
pub const CLUSTER_HEADER: &str = "hawser-cluster";
/// CONNECT: `true` asks the broker to send cluster updates.
pub const CLUSTER_UPDATES_HEADER: &str = "hawser-cluster-updates";
/// The subscription id of the MESSAGE frames that carry cluster updates.
pub const CLUSTER_SUBSCRIPTION: &str = "hawser-cluster";
