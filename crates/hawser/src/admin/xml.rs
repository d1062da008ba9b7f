//! ActiveMQ's web console XML pages, which monitoring tools read (Telegraf's
//! `activemq` input, Netdata, Datadog, scripts): `/admin/xml/queues.jsp`,
//! `topics.jsp` and `subscribers.jsp`, with the elements and attributes of
//! ActiveMQ 5.17's pages (its `activemq-web-console` sources):
//!
//! - `<queues><queue name><stats size consumerCount enqueueCount
//!   dequeueCount/><feed><atom/><rss/></feed></queue></queues>`;
//! - `<topics><topic name><stats .../></topic></topics>`;
//! - `<subscribers><subscriber clientId subscriptionName connectionId
//!   destinationName selector active><stats pendingQueueSize
//!   dispatchedQueueSize dispatchedCounter enqueueCounter
//!   dequeueCounter/></subscriber></subscribers>`: durable topic
//!   subscriptions, active (`yes`) and offline (`no`, connection `NOTSET`).
//!
//! Two of ActiveMQ's quirks are not copied: its topic names end in a space
//! (tools trim it), and since 5.14 its feed links escape `&` twice. Counts
//! come from the metrics registry (at most a second old), as `/metrics`.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hawser_broker::DestinationKind;

use crate::status::Endpoint;

type Shared = State<Arc<Endpoint>>;

/// ActiveMQ's content type for these pages (5.17.1 and later).
const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// The pages' routes.
pub(crate) fn routes() -> Router<Arc<Endpoint>> {
    Router::new()
        .route("/admin/xml/queues.jsp", get(queues))
        .route("/admin/xml/topics.jsp", get(topics))
        .route("/admin/xml/subscribers.jsp", get(subscribers))
}

/// `s` escaped for an attribute value or text; control characters, which
/// XML 1.0 cannot hold at all, become U+FFFD.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && !is_control(c);
    if s.chars().all(plain) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_control(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out.into()
}

/// A character XML 1.0 does not allow (tab, line feed and return it does).
fn is_control(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

fn not_serving() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "not serving\n").into_response()
}

/// The queues' or the topics' page.
fn destinations(endpoint: &Endpoint, kind: DestinationKind) -> Option<String> {
    let serving = endpoint.source.health.serving()?;
    let sample = serving.broker.metrics().sample();
    let (list, item) = match kind {
        DestinationKind::Queue => ("queues", "queue"),
        _ => ("topics", "topic"),
    };
    let mut out = format!("<{list}>\n");
    for (d, s) in sample.destinations.iter().filter(|(d, _)| d.kind == kind) {
        let name = escape(&d.name);
        let _ = write!(
            out,
            "<{item} name=\"{name}\">\n<stats size=\"{}\" consumerCount=\"{}\" enqueueCount=\"{}\" dequeueCount=\"{}\"/>\n",
            s.gauges.depth, s.gauges.consumers, s.counts.enqueued, s.counts.dequeued
        );
        if kind == DestinationKind::Queue {
            // As ActiveMQ: the name as it is, not URL-encoded.
            let _ = write!(
                out,
                "<feed>\n<atom>queueBrowse/{name}?view=rss&amp;feedType=atom_1.0</atom>\n<rss>queueBrowse/{name}?view=rss&amp;feedType=rss_2.0</rss>\n</feed>\n"
            );
        }
        let _ = writeln!(out, "</{item}>");
    }
    let _ = writeln!(out, "</{list}>");
    Some(out)
}

async fn queues(State(endpoint): Shared) -> Response {
    destinations(&endpoint, DestinationKind::Queue).map_or_else(not_serving, xml)
}

async fn topics(State(endpoint): Shared) -> Response {
    destinations(&endpoint, DestinationKind::Topic).map_or_else(not_serving, xml)
}

async fn subscribers(State(endpoint): Shared) -> Response {
    let Some(serving) = endpoint.source.health.serving() else {
        return not_serving();
    };
    let mut out = String::from("<subscribers>\n");
    for s in super::api::subscription_rows(&serving.broker)
        .iter()
        .filter(|s| s.durable_name.is_some())
    {
        let text = |v: &Option<String>| escape(v.as_deref().unwrap_or_default()).into_owned();
        let (connection, active) = match s.connection {
            Some(c) => (c.to_string(), "yes"),
            None => ("NOTSET".to_owned(), "no"),
        };
        let destination = s
            .destination
            .strip_prefix("topic://")
            .unwrap_or(&s.destination);
        let _ = write!(
            out,
            "<subscriber clientId=\"{}\" subscriptionName=\"{}\" connectionId=\"{}\" destinationName=\"{}\" selector=\"{}\" active=\"{active}\">\n\
             <stats pendingQueueSize=\"{}\" dispatchedQueueSize=\"{}\" dispatchedCounter=\"{}\" enqueueCounter=\"{}\" dequeueCounter=\"{}\"/>\n\
             </subscriber>\n",
            text(&s.client_id),
            text(&s.durable_name),
            escape(&connection),
            escape(destination),
            text(&s.selector),
            s.pending,
            s.inflight,
            s.dispatched,
            s.enqueued,
            s.dequeued,
        );
    }
    out.push_str("</subscribers>\n");
    xml(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(escape("plain.name"), "plain.name");
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(escape("bell\u{7}"), "bell\u{fffd}");
    }
}
