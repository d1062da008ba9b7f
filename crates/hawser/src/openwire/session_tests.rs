//! The OpenWire session over a real loopback socket, driven by a raw peer that
//! speaks what ActiveMQ's Java client sends: here, what its failover transport
//! sends when it reconnects (FailoverTransport#restoreTransport,
//! ConnectionStateTracker#restore in activemq-client 5.17).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hawser_broker::{Broker, BrokerConfig, MemoryStore, Recovered};
use hawser_openwire::{
    self as ow, negotiate, AckType, Codec, Command, WireFormatOptions, WireSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{serve_connection, OpenWireSettings};
use crate::connection::{ReadTimeouts, MAX_LOGIN_FRAME_BYTES};
use crate::test_peer::{accept_on_loopback, core_settings};

const MAX_FRAME_BYTES: u64 = 1 << 20;
/// How long a peer waits for a command that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a peer watches for a command that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// Serves OpenWire for `broker` on a loopback port until `shutdown`.
async fn serve(broker: Arc<Broker>, shutdown: &CancellationToken) -> SocketAddr {
    serve_advertising(broker, shutdown, crate::config::ClusterConfig::default()).await
}

/// As [`serve`], advertising `cluster` to clients.
async fn serve_advertising(
    broker: Arc<Broker>,
    shutdown: &CancellationToken,
    cluster: crate::config::ClusterConfig,
) -> SocketAddr {
    let auth = crate::security::Authenticator::open();
    serve_with(broker, shutdown, cluster, auth, 0).await
}

/// As [`serve`], with `auth` deciding who may connect and `login_timeout_ms`.
async fn serve_with(
    broker: Arc<Broker>,
    shutdown: &CancellationToken,
    cluster: crate::config::ClusterConfig,
    auth: crate::security::Authenticator,
    login_timeout_ms: u64,
) -> SocketAddr {
    let core = crate::connection::CoreSettings {
        cluster: tokio::sync::watch::channel(Arc::new(cluster)).1,
        auth: Arc::new(auth),
        flow_events: Default::default(),
        ..core_settings(broker)
    };
    let settings = Arc::new(OpenWireSettings {
        core: Arc::new(core),
        timeouts: ReadTimeouts {
            connect_ms: 5_000,
            frame_ms: 5_000,
            idle_ms: 0,
        },
        login_timeout_ms,
        max_frame_bytes: MAX_FRAME_BYTES,
        broker_id: "ID:test-broker".into(),
        broker_name: "test".into(),
        max_browse_messages: 400,
        rebalance_turn: std::sync::atomic::AtomicUsize::new(0),
    });
    accept_on_loopback(shutdown, move |sock, stop| {
        serve_connection(
            crate::connection::Transport::tcp(sock),
            Arc::clone(&settings),
            stop,
        )
    })
    .await
}

/// A raw OpenWire client: the negotiated codec on a socket.
struct Peer {
    sock: TcpStream,
    codec: Codec,
    buf: BytesMut,
    /// Commands read while waiting for a Response, for later reads.
    pending: VecDeque<Command>,
}

impl Peer {
    /// Connects, exchanges WireFormatInfo and reads the BrokerInfo.
    async fn connect(addr: SocketAddr) -> Peer {
        let mut p = Peer {
            sock: TcpStream::connect(addr).await.unwrap(),
            codec: Codec::new(WireSettings::initial(MAX_FRAME_BYTES)),
            buf: BytesMut::new(),
            pending: VecDeque::new(),
        };
        let Some(Command::WireFormatInfo(theirs)) = p.next(WAIT).await else {
            panic!("no WireFormatInfo first");
        };
        let ours = WireFormatOptions::default().to_info();
        p.send(Command::WireFormatInfo(ours.clone())).await;
        p.codec
            .set_settings(negotiate(&ours, &theirs).unwrap().wire);
        assert!(matches!(p.next(WAIT).await, Some(Command::BrokerInfo(_))));
        p
    }

    async fn send(&mut self, command: Command) {
        let mut out = BytesMut::new();
        self.codec.encode(&command, &mut out).unwrap();
        self.sock.write_all(&out).await.unwrap();
    }

    /// The next command but keep-alives and ConnectionControls (the broker's
    /// list of peers), or None if none comes within `wait` (or the broker closed).
    async fn next(&mut self, wait: Duration) -> Option<Command> {
        if let Some(command) = self.pending.pop_front() {
            return Some(command);
        }
        self.read(wait).await
    }

    /// The next ConnectionControl from the socket (other commands dropped).
    async fn connection_control(&mut self, wait: Duration) -> ow::ConnectionControl {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(command) = self.codec.decode(&mut self.buf).unwrap() {
                if let Command::ConnectionControl(c) = command {
                    return c;
                }
            }
            let read = tokio::time::timeout_at(deadline, self.sock.read_buf(&mut self.buf)).await;
            assert!(
                matches!(read, Ok(Ok(n)) if n > 0),
                "no ConnectionControl came"
            );
        }
    }

    /// The next command from the socket.
    async fn read(&mut self, wait: Duration) -> Option<Command> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(command) = self.codec.decode(&mut self.buf).unwrap() {
                if !matches!(
                    command,
                    Command::KeepAliveInfo(_) | Command::ConnectionControl(_)
                ) {
                    return Some(command);
                }
            }
            let read = tokio::time::timeout_at(deadline, self.sock.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Sends a command that asks for a reply; the reply must be a Response to
    /// it. Dispatches that come first are kept for [`Peer::next`].
    async fn request(&mut self, command: Command) {
        let id = command.command_id().unwrap();
        self.send(command).await;
        loop {
            match self.read(WAIT).await {
                Some(Command::Response(r)) => {
                    assert_eq!(r.correlation_id, id);
                    return;
                }
                Some(d @ Command::MessageDispatch(_)) => self.pending.push_back(d),
                other => panic!("expected the Response to {id}, got {other:?}"),
            }
        }
    }

    /// The next MessageDispatch with a message; its text.
    async fn dispatch(&mut self) -> (ow::MessageDispatch, String) {
        match self.next(WAIT).await {
            Some(Command::MessageDispatch(d)) => {
                let m = d.message.as_ref().expect("a message");
                let text = ow::decode_text_body(m.content.as_ref().unwrap())
                    .unwrap()
                    .unwrap();
                (d, text)
            }
            other => panic!("expected a MessageDispatch, got {other:?}"),
        }
    }
}

/// The ids one JMS connection uses: its connection, session 1, producer 1,
/// consumer 1 on queue `q`.
struct Client {
    connection: String,
}

impl Client {
    fn connection_info(&self, command_id: i32, failover_reconnect: bool) -> Command {
        Command::ConnectionInfo(ow::ConnectionInfo {
            command_id,
            response_required: true,
            connection_id: Some(ow::ConnectionId {
                value: self.connection.clone(),
            }),
            client_id: Some("failover-client".into()),
            manageable: true,
            fault_tolerant: true,
            failover_reconnect,
            ..ow::ConnectionInfo::default()
        })
    }

    fn session_info(&self, command_id: i32) -> Command {
        Command::SessionInfo(ow::SessionInfo {
            command_id,
            response_required: true,
            session_id: Some(ow::SessionId {
                connection_id: self.connection.clone(),
                value: 1,
            }),
        })
    }

    fn producer_id(&self) -> ow::ProducerId {
        ow::ProducerId {
            connection_id: self.connection.clone(),
            value: 1,
            session_id: 1,
        }
    }

    fn consumer_id(&self) -> ow::ConsumerId {
        ow::ConsumerId {
            connection_id: self.connection.clone(),
            session_id: 1,
            value: 1,
        }
    }

    fn queue() -> ow::Destination {
        ow::Destination {
            kind: ow::DestinationKind::Queue,
            physical_name: "q".into(),
        }
    }

    fn producer_info(&self, command_id: i32) -> Command {
        Command::ProducerInfo(ow::ProducerInfo {
            command_id,
            response_required: true,
            producer_id: Some(self.producer_id()),
            destination: Some(Self::queue()),
            ..ow::ProducerInfo::default()
        })
    }

    fn consumer_info(&self, command_id: i32, prefetch: i32) -> Command {
        Command::ConsumerInfo(ow::ConsumerInfo {
            command_id,
            response_required: true,
            consumer_id: Some(self.consumer_id()),
            destination: Some(Self::queue()),
            prefetch_size: prefetch,
            ..ow::ConsumerInfo::default()
        })
    }

    /// A persistent synchronous send of producer sequence `seq`.
    fn send(&self, command_id: i32, seq: i64, text: &str) -> Command {
        Command::Message(Box::new(ow::Message {
            kind: ow::MessageKind::Text,
            command_id,
            response_required: true,
            producer_id: Some(self.producer_id()),
            destination: Some(Self::queue()),
            message_id: Some(ow::MessageId {
                text_view: None,
                producer_id: Some(self.producer_id()),
                producer_sequence_id: seq,
                broker_sequence_id: 0,
            }),
            persistent: true,
            priority: 4,
            content: Some(ow::encode_text_body(Some(text))),
            ..ow::Message::default()
        }))
    }

    /// A standard ack, without reply, of a message by its broker id.
    fn ack(&self, broker_sequence_id: i64) -> Command {
        let id = ow::MessageId {
            text_view: None,
            producer_id: Some(self.producer_id()),
            producer_sequence_id: 1,
            broker_sequence_id,
        };
        Command::MessageAck(ow::MessageAck {
            destination: Some(Self::queue()),
            consumer_id: Some(self.consumer_id()),
            ack_type: AckType::Standard,
            first_message_id: Some(id.clone()),
            last_message_id: Some(id),
            message_count: 1,
            ..ow::MessageAck::default()
        })
    }

    /// The poison ack the client's duplicate audit sends for a dispatch it
    /// had seen (ActiveMQMessageConsumer#dispatch, #poisonAck).
    fn duplicate_poison_ack(&self, dispatched: &ow::MessageDispatch) -> Command {
        let id = dispatched.message.as_ref().unwrap().message_id.clone();
        Command::MessageAck(ow::MessageAck {
            destination: Some(Self::queue()),
            consumer_id: Some(self.consumer_id()),
            ack_type: AckType::Poison,
            first_message_id: id.clone(),
            last_message_id: id,
            message_count: 1,
            poison_cause: Some(ow::ExceptionInfo {
                class_name: Some("java.lang.Throwable".into()),
                message: Some("Suppressing duplicate delivery on connection, consumer 1".into()),
                ..ow::ExceptionInfo::default()
            }),
            ..ow::MessageAck::default()
        })
    }
}

fn memory_broker() -> Arc<Broker> {
    Arc::new(Broker::new(
        BrokerConfig::default(),
        Arc::new(MemoryStore::new()),
        Recovered::default(),
    ))
}

/// The client's side of a failover, in its order: ConnectionControl before
/// the ConnectionInfo it sends again; its consumer restored with prefetch 0
/// and later widened by ConsumerControl; the send whose Response it never saw
/// sent again with the same message id; acks for what the broker before
/// dispatched. The broker must serve all of it on the one connection.
#[tokio::test]
async fn a_failover_clients_reconnect_is_served_as_activemqs_client_sends_it() {
    let shutdown = CancellationToken::new();
    let broker = memory_broker();
    let addr = serve(Arc::clone(&broker), &shutdown).await;
    let client = Client {
        connection: "ID:peer-1-1700000000000-1:1".into(),
    };

    // Before the failover: message 1 is stored, dispatched and not acknowledged.
    let mut before = Peer::connect(addr).await;
    before.request(client.connection_info(1, false)).await;
    before.request(client.session_info(2)).await;
    before.request(client.producer_info(3)).await;
    before.request(client.consumer_info(4, 1000)).await;
    before.request(client.send(5, 1, "one")).await;
    let (first, text) = before.dispatch().await;
    assert_eq!(text, "one");
    assert_eq!(first.redelivery_counter, 0);
    let stale_id = first
        .message
        .unwrap()
        .message_id
        .unwrap()
        .broker_sequence_id;
    // The connection is lost.
    drop(before);
    for _ in 0..500 {
        if broker.connection_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.connection_count(), 0, "the lost connection ended");

    // The reconnect.
    let mut after = Peer::connect(addr).await;
    after
        .send(Command::ConnectionControl(ow::ConnectionControl {
            fault_tolerant: true,
            ..ow::ConnectionControl::default()
        }))
        .await;
    after.request(client.connection_info(1, true)).await;
    after.request(client.session_info(2)).await;
    after.request(client.producer_info(3)).await;
    after.request(client.consumer_info(4, 0)).await;
    // The send whose Response was lost: confirmed again, not stored again.
    after.request(client.send(5, 1, "one")).await;
    // An ack for a message this connection was not given: ignored, the
    // connection goes on (an ack asks for no reply, so refusing it would close it).
    after.send(client.ack(stale_id + 1_000_000)).await;
    assert!(
        after.next(QUIET).await.is_none(),
        "nothing for a consumer restored with prefetch 0"
    );
    after
        .send(Command::ConsumerControl(ow::ConsumerControl {
            destination: Some(Client::queue()),
            consumer_id: Some(client.consumer_id()),
            prefetch: 1000,
            ..ow::ConsumerControl::default()
        }))
        .await;
    let (again, text) = after.dispatch().await;
    assert_eq!(text, "one");
    assert_eq!(again.redelivery_counter, 1, "it was dispatched before");
    assert!(
        after.next(QUIET).await.is_none(),
        "message 1 is there once, though sent twice"
    );
    // The connection is still served: a new send is confirmed and dispatched.
    after.request(client.send(6, 2, "two")).await;
    assert_eq!(after.dispatch().await.1, "two");
    shutdown.cancel();
}

/// A message whose ack a failed broker lost comes again after the failover;
/// the client's audit drops it and poison-acks it. The broker must not hand
/// it back: it goes to the DLQ at once (as with ActiveMQ), with the client's
/// reason, and what the consumer holds besides stays with it.
#[tokio::test]
async fn a_poison_ack_dead_letters_the_message_it_names_at_once() {
    let shutdown = CancellationToken::new();
    let broker = memory_broker();
    let addr = serve(Arc::clone(&broker), &shutdown).await;
    let client = Client {
        connection: "ID:peer-2-1700000000000-1:1".into(),
    };
    let mut peer = Peer::connect(addr).await;
    peer.request(client.connection_info(1, false)).await;
    peer.request(client.session_info(2)).await;
    peer.request(client.producer_info(3)).await;
    peer.request(client.consumer_info(4, 1000)).await;
    peer.request(client.send(5, 1, "one")).await;
    peer.request(client.send(6, 2, "two")).await;
    let (one, _) = peer.dispatch().await;
    let (two, text) = peer.dispatch().await;
    assert_eq!(text, "two");
    peer.send(client.duplicate_poison_ack(&two)).await;
    assert!(
        peer.next(QUIET).await.is_none(),
        "a refused duplicate is not redelivered"
    );
    // "one", dispatched before it, is still held: acknowledged as usual.
    let one_id = one.message.unwrap().message_id.unwrap().broker_sequence_id;
    peer.send(client.ack(one_id)).await;
    let dlq = ow::ConsumerId {
        value: 2,
        ..client.consumer_id()
    };
    peer.request(Command::ConsumerInfo(ow::ConsumerInfo {
        command_id: 7,
        response_required: true,
        consumer_id: Some(dlq),
        destination: Some(ow::Destination {
            kind: ow::DestinationKind::Queue,
            physical_name: "ActiveMQ.DLQ".into(),
        }),
        prefetch_size: 10,
        ..ow::ConsumerInfo::default()
    }))
    .await;
    let (dead, text) = peer.dispatch().await;
    assert_eq!(text, "two");
    let cause = dead
        .message
        .unwrap()
        .properties
        .unwrap()
        .get("dlqDeliveryFailureCause")
        .cloned();
    assert_eq!(
        cause,
        Some(ow::PrimitiveValue::String(
            "java.lang.Throwable: Suppressing duplicate delivery on connection, consumer 1".into()
        ))
    );
    assert!(peer.next(QUIET).await.is_none(), "only the one refused");
    shutdown.cancel();
}

/// An asynchronous send the engine refuses (here to a temporary queue that
/// does not exist) is answered with a ConnectionError, which ActiveMQ's
/// client hands to the exception listener; the connection goes on.
#[tokio::test]
async fn a_refused_send_without_reply_is_reported_and_the_connection_goes_on() {
    let shutdown = CancellationToken::new();
    let addr = serve(memory_broker(), &shutdown).await;
    let client = Client {
        connection: "ID:peer-2-1700000000000-1:1".into(),
    };
    let mut peer = Peer::connect(addr).await;
    peer.request(client.connection_info(1, false)).await;
    peer.request(client.session_info(2)).await;
    peer.request(client.producer_info(3)).await;
    let Command::Message(mut async_send) = client.send(4, 1, "nowhere") else {
        unreachable!()
    };
    async_send.response_required = false;
    async_send.destination = Some(ow::Destination {
        kind: ow::DestinationKind::TempQueue,
        physical_name: "ID:gone-1:1:1".into(),
    });
    peer.send(Command::Message(async_send)).await;
    match peer.next(WAIT).await {
        Some(Command::ConnectionError(e)) => {
            let text = e.exception.and_then(|x| x.message).unwrap_or_default();
            assert!(text.contains("ID:gone-1:1:1"), "{text}");
        }
        other => panic!("expected a ConnectionError, got {other:?}"),
    }
    // Still connected: a synchronous send is answered.
    peer.request(client.send(5, 2, "here")).await;
    peer.request(client.consumer_info(6, 10)).await;
    let (_, text) = peer.dispatch().await;
    assert_eq!(text, "here");
    shutdown.cancel();
}

/// The broker id of a dispatched message, which acks and RemoveInfo name.
fn broker_id(d: &ow::MessageDispatch) -> i64 {
    d.message
        .as_ref()
        .unwrap()
        .message_id
        .as_ref()
        .unwrap()
        .broker_sequence_id
}

impl Client {
    /// The RemoveInfo ActiveMQMessageConsumer#doClose sends, naming the last
    /// message it delivered to the application.
    fn remove_consumer(&self, command_id: i32, last_delivered: i64) -> Command {
        Command::RemoveInfo(ow::RemoveInfo {
            command_id,
            response_required: false,
            object_id: Some(ow::DataStructure::ConsumerId(self.consumer_id())),
            last_delivered_sequence_id: last_delivered,
        })
    }

    fn transaction(&self, command_id: i32, kind: ow::TransactionType) -> Command {
        Command::TransactionInfo(ow::TransactionInfo {
            command_id,
            response_required: true,
            connection_id: Some(ow::ConnectionId {
                value: self.connection.clone(),
            }),
            transaction_id: Some(self.local_transaction()),
            kind,
        })
    }

    fn local_transaction(&self) -> ow::TransactionId {
        ow::TransactionId::Local(ow::LocalTransactionId {
            value: 1,
            connection_id: Some(ow::ConnectionId {
                value: self.connection.clone(),
            }),
        })
    }

    /// A second consumer on `q` (consumer 2 of session 1).
    fn second_consumer(&self, command_id: i32) -> Command {
        Command::ConsumerInfo(ow::ConsumerInfo {
            command_id,
            response_required: true,
            consumer_id: Some(ow::ConsumerId {
                value: 2,
                ..self.consumer_id()
            }),
            destination: Some(Self::queue()),
            prefetch_size: 1000,
            ..ow::ConsumerInfo::default()
        })
    }
}

/// A consumer that closes says which message it last delivered to the
/// application: what it held after that was only prefetched and comes to
/// the next consumer as a first delivery (ActiveMQ's Queue#removeSubscription).
#[tokio::test]
async fn what_a_closed_consumer_only_prefetched_is_not_redelivered() {
    let shutdown = CancellationToken::new();
    let broker = memory_broker();
    let addr = serve(Arc::clone(&broker), &shutdown).await;
    let client = Client {
        connection: "ID:peer-3-1700000000000-1:1".into(),
    };
    let mut peer = Peer::connect(addr).await;
    peer.request(client.connection_info(1, false)).await;
    peer.request(client.session_info(2)).await;
    peer.request(client.producer_info(3)).await;
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        peer.request(client.send(4 + i as i32, 1 + i as i64, text))
            .await;
    }
    peer.request(client.consumer_info(7, 1000)).await;
    let (one, _) = peer.dispatch().await;
    peer.dispatch().await;
    peer.dispatch().await;
    // The application got "one" and did not acknowledge it.
    peer.send(client.remove_consumer(8, broker_id(&one))).await;
    peer.request(client.second_consumer(9)).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let (d, text) = peer.dispatch().await;
        got.push((text, d.redelivery_counter));
    }
    assert_eq!(
        got,
        [
            ("one".to_owned(), 1),
            ("two".to_owned(), 0),
            ("three".to_owned(), 0)
        ]
    );
    shutdown.cancel();
}

/// ActiveMQ's client redelivers what a rollback gave back by itself: the
/// broker leaves it with the consumer, which acknowledges it later, and
/// does not dispatch it a second time.
#[tokio::test]
async fn a_rollback_leaves_what_it_acknowledged_with_the_consumer() {
    let shutdown = CancellationToken::new();
    let broker = memory_broker();
    let addr = serve(Arc::clone(&broker), &shutdown).await;
    let client = Client {
        connection: "ID:peer-4-1700000000000-1:1".into(),
    };
    let mut peer = Peer::connect(addr).await;
    peer.request(client.connection_info(1, false)).await;
    peer.request(client.session_info(2)).await;
    peer.request(client.producer_info(3)).await;
    peer.request(client.consumer_info(4, 1000)).await;
    peer.request(client.send(5, 1, "job")).await;
    let (job, _) = peer.dispatch().await;
    peer.send(client.transaction(6, ow::TransactionType::Begin))
        .await;
    assert!(matches!(peer.next(WAIT).await, Some(Command::Response(_))));
    let ow::Command::MessageAck(mut ack) = client.ack(broker_id(&job)) else {
        unreachable!()
    };
    ack.transaction_id = Some(client.local_transaction());
    peer.send(Command::MessageAck(ack)).await;
    peer.request(client.transaction(7, ow::TransactionType::Rollback))
        .await;
    assert!(
        peer.next(QUIET).await.is_none(),
        "not dispatched again: the client redelivers it"
    );
    // Acknowledged at the next attempt; nothing is left for anyone.
    peer.send(client.ack(broker_id(&job))).await;
    peer.send(client.remove_consumer(8, broker_id(&job))).await;
    peer.request(client.second_consumer(9)).await;
    assert!(peer.next(QUIET).await.is_none(), "the job is done");
    shutdown.cancel();
}

/// ActiveMQ's rebalanceClusterClients: a new client is asked to rebalance, over
/// a list turned by one for each, so that clients of `randomize=false` (which
/// go to the first broker listed) spread; a client that arrives by failing over
/// (or being rebalanced) is told the list but not asked to move again, or two
/// brokers advertising each other would send it back and forth for ever.
#[tokio::test]
async fn rebalancing_spreads_new_clients_and_leaves_a_reconnected_one_where_it_is() {
    let shutdown = CancellationToken::new();
    let cluster = crate::config::ClusterConfig {
        advertise_openwire: vec!["tcp://a:61616".into(), "tcp://b:61616".into()],
        rebalance_clients: true,
        ..crate::config::ClusterConfig::default()
    };
    let addr = serve_advertising(memory_broker(), &shutdown, cluster).await;
    let mut seen = Vec::new();
    for (n, failover_reconnect) in [(1, false), (2, false), (3, true)] {
        let client = Client {
            connection: format!("ID:peer-{n}-1700000000000-1:1"),
        };
        let mut peer = Peer::connect(addr).await;
        peer.send(client.connection_info(1, failover_reconnect))
            .await;
        let control = peer.connection_control(WAIT).await;
        seen.push((
            control.connected_brokers.unwrap_or_default(),
            control.rebalance_connection,
        ));
    }
    assert_eq!(
        seen,
        vec![
            ("tcp://a:61616,tcp://b:61616".to_owned(), true),
            ("tcp://b:61616,tcp://a:61616".to_owned(), true),
            ("tcp://a:61616,tcp://b:61616".to_owned(), false),
        ]
    );
    shutdown.cancel();
}

#[tokio::test]
async fn with_users_a_connection_that_does_not_authenticate_in_time_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let hash = crate::security::users::hash_password("s3cret").unwrap();
    crate::security::users::set_user(&users, "alice", &hash, &[]).unwrap();
    let auth = crate::security::Authenticator::new(Some(users), false).unwrap();
    let shutdown = CancellationToken::new();
    let addr = serve_with(
        memory_broker(),
        &shutdown,
        crate::config::ClusterConfig::default(),
        auth,
        600,
    )
    .await;

    // One peer logs in; another only keeps its connection alive.
    let mut alice = Peer::connect(addr).await;
    let started = tokio::time::Instant::now();
    let mut idle = Peer::connect(addr).await;
    let client = Client {
        connection: "ID:alice-1".into(),
    };
    let Command::ConnectionInfo(mut info) = client.connection_info(1, false) else {
        unreachable!()
    };
    info.user_name = Some("alice".into());
    info.password = Some("s3cret".into());
    alice.request(Command::ConnectionInfo(info)).await;

    let closed = loop {
        let mut keep_alive = BytesMut::new();
        idle.codec
            .encode(
                &Command::KeepAliveInfo(ow::KeepAliveInfo::default()),
                &mut keep_alive,
            )
            .unwrap();
        if idle.sock.write_all(&keep_alive).await.is_err() {
            break true;
        }
        let mut byte = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), idle.sock.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ if started.elapsed() > WAIT => break false,
            _ => {}
        }
    };
    assert!(
        closed,
        "keep-alives held an unauthenticated connection open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "closed before its time: {:?}",
        started.elapsed()
    );
    // The one that authenticated is served past its deadline.
    alice.request(client.session_info(2)).await;
    shutdown.cancel();
}

/// Until its ConnectionInfo succeeded, a peer may send small frames only: a
/// ConnectionInfo of 70 KiB closes the connection unanswered; after one,
/// a message of 100 KiB is served.
#[tokio::test]
async fn a_large_frame_before_connection_info_closes_the_connection() {
    let shutdown = CancellationToken::new();
    let addr = serve(memory_broker(), &shutdown).await;
    let client = Client {
        connection: "ID:peer-3-1700000000000-1:1".into(),
    };
    let Command::ConnectionInfo(mut info) = client.connection_info(1, false) else {
        unreachable!()
    };
    info.user_name = Some("u".repeat(30_000));
    info.password = Some("p".repeat(30_000));
    info.client_ip = Some("1".repeat(10_000));

    let mut stranger = Peer::connect(addr).await;
    let mut frame = BytesMut::new();
    stranger
        .codec
        .encode(&Command::ConnectionInfo(info), &mut frame)
        .unwrap();
    assert!(frame.len() > MAX_LOGIN_FRAME_BYTES);
    let _ = stranger.sock.write_all(&frame).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stranger.sock.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
    let mut rest = BytesMut::from(&rest[..]);
    while let Ok(Some(command)) = stranger.codec.decode(&mut rest) {
        assert!(
            !matches!(command, Command::Response(_)),
            "the large ConnectionInfo was answered"
        );
    }

    let mut peer = Peer::connect(addr).await;
    peer.request(client.connection_info(1, false)).await;
    peer.request(client.session_info(2)).await;
    peer.request(client.producer_info(3)).await;
    peer.request(client.send(4, 1, &"x".repeat(100 * 1024)))
        .await;
    shutdown.cancel();
}
