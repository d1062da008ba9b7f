//! The engine's hot path without I/O: send to a queue, dispatch to consumers,
//! acknowledge. A memory store, and outboxes that only count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hawser_broker::ConnectInfo;
use hawser_broker::{
    AckMode, Broker, BrokerConfig, Delivery, Destination, MemoryStore, NewMessage, Outbox,
    Recovered, SubscribeSpec,
};

/// Keeps the last delivery so the bench can acknowledge it.
#[derive(Default)]
struct Counter {
    delivered: AtomicU64,
    last: parking_lot::Mutex<Option<Delivery>>,
}

impl Outbox for Counter {
    fn deliver(&self, d: Delivery) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        *self.last.lock() = Some(d);
    }
}

fn message(dest: &Destination, body: &Bytes) -> NewMessage {
    let mut m = NewMessage::new(dest.clone(), body.clone());
    m.fields.properties = vec![(
        std::sync::Arc::from("color"),
        hawser_broker::PropertyValue::String(std::sync::Arc::from("blue")),
    )];
    m
}

fn dispatch(c: &mut Criterion) {
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("broker");
    group.throughput(Throughput::Elements(1));

    // Queue: send, deliver to one of 4 consumers, ack.
    let broker = Broker::new(
        BrokerConfig::default(),
        Arc::new(MemoryStore::new()),
        Recovered::default(),
    );
    let q = Destination::queue("bench");
    let outbox = Arc::new(Counter::default());
    let conn = broker
        .connect(ConnectInfo::in_process(None), outbox.clone())
        .unwrap();
    for i in 0..4 {
        broker
            .subscribe(
                conn,
                SubscribeSpec {
                    id: Arc::from(format!("s{i}")),
                    destination: q.clone(),
                    ack_mode: AckMode::ClientIndividual,
                    prefetch: 1000,
                    selector: None,
                    exclusive: false,
                    durable_name: None,
                    no_local: false,
                    priority: 0,
                    network_path: None,
                },
            )
            .unwrap();
    }
    group.bench_function("queue_send_dispatch_ack", |b| {
        b.iter(|| {
            broker.send(conn, message(&q, &body), None).unwrap();
            let d = outbox.last.lock().take().unwrap();
            broker
                .ack(conn, Some(&d.subscription), d.message.id, None, false)
                .unwrap();
        })
    });

    // Topic: one send fanned out to 16 subscribers (auto ack, settled as written).
    let t = Destination::topic("bench");
    let fan = Arc::new(Counter::default());
    let sub_conn = broker
        .connect(ConnectInfo::in_process(None), fan.clone())
        .unwrap();
    for i in 0..16 {
        broker
            .subscribe(
                sub_conn,
                SubscribeSpec {
                    id: Arc::from(format!("t{i}")),
                    destination: t.clone(),
                    ack_mode: AckMode::Auto,
                    prefetch: u32::MAX,
                    selector: None,
                    exclusive: false,
                    durable_name: None,
                    no_local: false,
                    priority: 0,
                    network_path: None,
                },
            )
            .unwrap();
    }
    group.throughput(Throughput::Elements(16));
    group.bench_function("topic_fan_out_16", |b| {
        b.iter(|| broker.send(conn, message(&t, &body), None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
