//! `GET /metrics`: the broker in Prometheus's text format (version 0.0.4).
//!
//! Everything here is read without the engine's lock: the engine's counts
//! and gauges come from its metrics registry, sampled once a second by the
//! engine itself (`hawser_broker::metrics`); memory, store and disk from
//! their atomics; the role from its watch; the network links from their
//! counters. A scrape costs the broker a copy of the registry and a string.

use std::fmt::{Display, Write};

use hawser_broker::metrics::{DestinationSample, Sample};
use hawser_broker::{Histogram, Protocol};
use hawser_ha::Role;

use std::sync::Arc;

use crate::connection::CoreSettings;
use crate::network::link::LinkStatus;

/// The content type Prometheus asks for.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Text in Prometheus's exposition format, a family at a time.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family: its help and type (`counter`, `gauge`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram family: its cumulative buckets, `+Inf`, sum and count.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut le = String::new();
        for (bound, count) in &h.buckets {
            le.clear();
            let _ = write!(le, "{bound}");
            self.sample(&bucket, &[("le", &le)], count);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count);
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends a label value to `s`: backslash, double quote and line feed escaped, as the
/// format wants (destination names come from clients).
fn escape_label(v: &str, s: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// What a scrape reports, gathered by the endpoint.
pub struct Scrape<'a> {
    pub role: &'a Role,
    /// When it took its role, ms since the Unix epoch.
    pub since_ms: u64,
    /// Times this broker became master.
    pub takeovers: u64,
    /// The store failed.
    pub failed: bool,
    /// The connections' settings of the store served, while one is.
    pub serving: Option<Arc<CoreSettings>>,
    /// The resources holding producers back now.
    pub held: Vec<&'static str>,
    /// Free bytes for the journal, when watched.
    pub disk_free: Option<u64>,
    pub network: &'a [LinkStatus],
}

/// The whole exposition.
pub fn render(scrape: &Scrape<'_>) -> String {
    let mut e = Exposition::default();
    e.family("hawser_info", "gauge", "The broker's version.");
    e.sample("hawser_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    e.family(
        "hawser_role",
        "gauge",
        "1 for the role the broker has now: master, slave or standalone.",
    );
    let role = scrape.role.name();
    for r in ["master", "slave", "standalone"] {
        e.sample("hawser_role", &[("role", r)], u8::from(r == role));
    }
    e.single(
        "hawser_epoch",
        "gauge",
        "The master's epoch (this broker's when it is the master); 0 when standalone.",
        scrape.role.epoch(),
    );
    e.single(
        "hawser_role_since_timestamp_seconds",
        "gauge",
        "When the broker took its current role.",
        scrape.since_ms as f64 / 1000.0,
    );
    e.single(
        "hawser_takeovers_total",
        "counter",
        "Times this broker became master since it started.",
        scrape.takeovers,
    );
    e.single(
        "hawser_store_failed",
        "gauge",
        "1 once the store failed (the broker then stops, exit 74).",
        u8::from(scrape.failed),
    );
    let serving = &scrape.serving;
    e.single(
        "hawser_serving",
        "gauge",
        "1 while the broker serves clients (master or standalone with its store open).",
        u8::from(serving.is_some()),
    );
    let held = &scrape.held;
    e.family(
        "hawser_producers_held",
        "gauge",
        "1 while producers are held back by flow control because of the resource.",
    );
    for r in ["memory", "store", "disk"] {
        e.sample(
            "hawser_producers_held",
            &[("resource", r)],
            u8::from(held.contains(&r)),
        );
    }
    if let Some(s) = serving {
        let memory = s.broker.memory();
        e.single(
            "hawser_memory_used_bytes",
            "gauge",
            "Memory held by pending messages.",
            memory.used(),
        );
        e.single(
            "hawser_memory_limit_bytes",
            "gauge",
            "Memory pending messages may hold before producers are held (memoryUsage).",
            memory.limit(),
        );
        e.single(
            "hawser_store_used_bytes",
            "gauge",
            "Bytes the store holds.",
            s.broker.store().disk_bytes(),
        );
        e.single(
            "hawser_store_limit_bytes",
            "gauge",
            "Store size at which producers are held (storeUsage).",
            s.max_store_bytes,
        );
        e.family(
            "hawser_disk_free_bytes",
            "gauge",
            "Free bytes on the journal's file system (when it is watched).",
        );
        if let Some(free) = scrape.disk_free {
            e.sample("hawser_disk_free_bytes", &[], free);
        }
        e.family(
            "hawser_flow_control_held_total",
            "counter",
            "Sends flow control made wait, by the resource that was full.",
        );
        let events: Vec<_> = s.flow_events.counts().collect();
        for (resource, held, _) in &events {
            e.sample(
                "hawser_flow_control_held_total",
                &[("resource", resource)],
                held,
            );
        }
        e.family(
            "hawser_flow_control_refused_total",
            "counter",
            "Sends refused because a resource was full (producer flow control off).",
        );
        for (resource, _, refused) in &events {
            e.sample(
                "hawser_flow_control_refused_total",
                &[("resource", resource)],
                refused,
            );
        }
        if let Some(w) = s.broker.store().write_stats() {
            e.histogram(
                "hawser_journal_fsync_seconds",
                "Seconds each fsync of the journal took.",
                &w.sync_seconds,
            );
            e.histogram(
                "hawser_journal_fsync_batch_records",
                "Records each fsync of the journal made durable (group commit).",
                &w.batch_records,
            );
        }
        engine(&mut e, &s.broker.metrics().sample());
    }
    network(&mut e, scrape.network);
    e.finish()
}

/// The engine's sample: connections, and each destination.
fn engine(e: &mut Exposition, s: &Sample) {
    e.single(
        "hawser_metrics_sampled_timestamp_seconds",
        "gauge",
        "When the engine last sampled its counts and gauges (once a second).",
        s.sampled_at_ms as f64 / 1000.0,
    );
    e.family(
        "hawser_connections",
        "gauge",
        "Open client connections by protocol.",
    );
    for protocol in [Protocol::Stomp, Protocol::OpenWire] {
        let n = s.connections.get(&protocol).copied().unwrap_or(0);
        e.sample(
            "hawser_connections",
            &[("protocol", &protocol.to_string())],
            n,
        );
    }
    type Field = fn(&DestinationSample) -> u64;
    let families: [(&str, &str, &str, Field); 9] = [
        (
            "hawser_destination_depth",
            "gauge",
            "Messages waiting, in memory and paged out (a topic: in its subscriptions).",
            |d| d.gauges.depth,
        ),
        (
            "hawser_destination_paged",
            "gauge",
            "Of the messages waiting, those in the store only.",
            |d| d.gauges.paged,
        ),
        (
            "hawser_destination_inflight",
            "gauge",
            "Messages delivered and not yet acknowledged.",
            |d| d.gauges.inflight,
        ),
        (
            "hawser_destination_consumers",
            "gauge",
            "Consumers (a topic: subscriptions).",
            |d| d.gauges.consumers,
        ),
        (
            "hawser_destination_producers",
            "gauge",
            "Producers sending to it that said so (OpenWire's; STOMP has none).",
            |d| d.gauges.producers,
        ),
        (
            "hawser_destination_enqueued_total",
            "counter",
            "Messages that entered the destination (once per message for a topic).",
            |d| d.counts.enqueued,
        ),
        (
            "hawser_destination_dequeued_total",
            "counter",
            "Messages consumers acknowledged (per subscription for a topic).",
            |d| d.counts.dequeued,
        ),
        (
            "hawser_destination_expired_total",
            "counter",
            "Messages that expired in the destination.",
            |d| d.counts.expired,
        ),
        (
            "hawser_destination_dead_lettered_total",
            "counter",
            "Messages moved from the destination to the dead-letter queue.",
            |d| d.counts.dead_lettered,
        ),
    ];
    // Each name rendered once, whatever the number of families.
    let names: Vec<String> = s.destinations.keys().map(|d| d.to_string()).collect();
    let untracked = DestinationSample {
        counts: s.untracked,
        ..DestinationSample::default()
    };
    for (name, kind, help, get) in families {
        e.family(name, kind, help);
        for (label, sample) in names.iter().zip(s.destinations.values()) {
            e.sample(name, &[("destination", label)], get(sample));
        }
        if kind == "counter" {
            // Destinations beyond the registry's bound, together (no
            // destination's name has this form: theirs start with a scheme).
            e.sample(name, &[("destination", "other")], get(&untracked));
        }
    }
}

fn network(e: &mut Exposition, links: &[LinkStatus]) {
    type Field = fn(&LinkStatus) -> u64;
    let families: [(&str, &str, &str, Field); 5] = [
        (
            "hawser_network_link_up",
            "gauge",
            "1 while the network link to the peer is connected.",
            |l| u64::from(l.up),
        ),
        (
            "hawser_network_link_connections_total",
            "counter",
            "Connections the link made to the peer.",
            |l| l.connections,
        ),
        (
            "hawser_network_link_demands",
            "gauge",
            "The peer's consumers the link serves.",
            |l| l.demands,
        ),
        (
            "hawser_network_link_forwarded_total",
            "counter",
            "Messages the link forwarded and the peer confirmed.",
            |l| l.forwarded,
        ),
        (
            "hawser_network_link_pulled_total",
            "counter",
            "Messages a duplex link took from the peer.",
            |l| l.pulled,
        ),
    ];
    for (name, kind, help, get) in families {
        e.family(name, kind, help);
        for l in links {
            e.sample(name, &[("peer", &l.peer)], get(l));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_from_clients_are_escaped() {
        let mut e = Exposition::default();
        e.family("x", "gauge", "help\nwith a line");
        e.sample("x", &[("destination", "queue://a\"b\\c\nd")], 1);
        assert_eq!(
            e.finish(),
            "# HELP x help\\nwith a line\n# TYPE x gauge\nx{destination=\"queue://a\\\"b\\\\c\\nd\"} 1\n"
        );
    }
}
