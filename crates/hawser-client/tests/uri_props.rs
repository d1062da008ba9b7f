//! Properties of the connection URI parser: what it prints it reads back, it never panics,
//! and every malformed form is refused with the error that names it.

use std::net::{Ipv4Addr, Ipv6Addr};

use hawser_client::uri::{
    parse, BrokerUri, ConnectUri, FailoverOptions, Scheme, TransportOptions, UriError, MAX_BROKERS,
};
use proptest::prelude::*;

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![Just(Scheme::Tcp), Just(Scheme::Stomp)]
}

/// Hosts in the canonical form the parser stores: lower-case names, canonical addresses.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_-]{0,10}(\\.[a-z0-9][a-z0-9-]{0,8}){0,2}",
        any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        any::<u128>().prop_map(|a| Ipv6Addr::from(a).to_string()),
        Just("localhost".to_owned()),
    ]
}

/// Values near the defaults as well as anywhere in range.
fn ms() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(30_000), 0..100_000u64, any::<u64>()]
}

fn transport_options() -> impl Strategy<Value = TransportOptions> {
    (ms(), any::<bool>(), any::<bool>(), ms()).prop_map(
        |(connection_timeout_ms, tcp_no_delay, keep_alive, heart_beat_ms)| TransportOptions {
            connection_timeout_ms,
            tcp_no_delay,
            keep_alive,
            heart_beat_ms,
        },
    )
}

fn broker() -> impl Strategy<Value = BrokerUri> {
    (scheme(), host(), 1..=u16::MAX, transport_options()).prop_map(
        |(scheme, host, port, options)| BrokerUri {
            scheme,
            host,
            port,
            options,
        },
    )
}

/// A priority URI as the parser makes it: address only, default options.
fn bare_broker() -> impl Strategy<Value = BrokerUri> {
    (scheme(), host(), 1..=u16::MAX).prop_map(|(scheme, host, port)| BrokerUri {
        scheme,
        host,
        port,
        options: TransportOptions::default(),
    })
}

fn limit() -> impl Strategy<Value = i64> {
    prop_oneof![Just(-1i64), Just(0), 0..100i64, 0..i64::MAX]
}

fn failover_options() -> impl Strategy<Value = FailoverOptions> {
    let delays = (
        ms(),
        ms(),
        any::<bool>(),
        prop_oneof![Just(2.0), Just(1.0), 1.0..100.0f64, 1.0..f64::MAX],
    );
    let limits = (limit(), limit(), any::<bool>(), limit());
    let spares = (
        any::<bool>(),
        1..=u32::MAX,
        any::<bool>(),
        prop::collection::vec(bare_broker(), 0..3),
        any::<bool>(),
    );
    (delays, limits, spares).prop_map(
        |(
            (initial, max, back_off, exponent),
            (attempts, startup, randomize, timeout),
            (backup, pool, priority_backup, priority_uris, update),
        )| FailoverOptions {
            initial_reconnect_delay_ms: initial,
            max_reconnect_delay_ms: max,
            use_exponential_back_off: back_off,
            reconnect_delay_exponent: exponent,
            max_reconnect_attempts: attempts,
            startup_max_reconnect_attempts: startup,
            randomize,
            timeout_ms: timeout,
            backup,
            backup_pool_size: pool,
            priority_backup,
            priority_uris,
            update_uris_supported: update,
        },
    )
}

fn connect_uri() -> impl Strategy<Value = ConnectUri> {
    prop_oneof![
        broker().prop_map(ConnectUri::Direct),
        (prop::collection::vec(broker(), 1..6), failover_options())
            .prop_map(|(brokers, options)| ConnectUri::Failover { brokers, options }),
    ]
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_value(uri in connect_uri()) {
        let text = uri.to_string();
        prop_assert_eq!(parse(&text), Ok(uri.clone()), "{}", text);
        prop_assert_eq!(text.parse::<ConnectUri>(), Ok(uri));
    }

    #[test]
    fn whitespace_around_commas_and_ends_is_ignored(uri in connect_uri()) {
        let spaced = format!("  {}\t", uri.to_string().replace(',', " ,\t "));
        prop_assert_eq!(parse(&spaced), Ok(uri), "{}", spaced);
    }

    #[test]
    fn broker_display_parses_back(broker in broker()) {
        prop_assert_eq!(broker.to_string().parse::<BrokerUri>(), Ok(broker));
    }

    #[test]
    fn nested_options_reach_every_broker_unless_overridden(
        brokers in prop::collection::vec(bare_broker(), 1..5),
        nested in any::<bool>(),
        own in prop::collection::vec(any::<Option<bool>>(), 5),
    ) {
        let list: Vec<String> = brokers
            .iter()
            .zip(&own)
            .map(|(b, own)| match own {
                Some(v) => format!("{b}?keepAlive={v}"),
                None => b.to_string(),
            })
            .collect();
        let text = format!("failover:({})?nested.keepAlive={nested}", list.join(","));
        let Ok(ConnectUri::Failover { brokers: parsed, .. }) = parse(&text) else {
            return Err(TestCaseError::fail(format!("{text} did not parse")));
        };
        for (broker, own) in parsed.iter().zip(&own) {
            prop_assert_eq!(broker.options.keep_alive, own.unwrap_or(nested));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse(&text);
    }

    #[test]
    fn uri_like_text_never_panics_and_what_parses_round_trips(
        text in "(failover:|tcp://|stomp://)?[a-z0-9:/()?=&,.\\[\\] +_-]{0,60}",
    ) {
        if let Ok(uri) = parse(&text) {
            prop_assert_eq!(parse(&uri.to_string()), Ok(uri));
        }
    }

    #[test]
    fn mutated_valid_uris_never_panic_and_what_parses_round_trips(
        uri in connect_uri(),
        position in any::<prop::sample::Index>(),
        insert in prop::option::of(prop::sample::select(
            vec!['(', ')', ',', '?', '&', '=', ':', '/', '[', ']', ' ', 'x', '0', '.'],
        )),
    ) {
        let mut chars: Vec<char> = uri.to_string().chars().collect();
        let at = position.index(chars.len() + 1);
        match insert {
            Some(c) => chars.insert(at, c),
            None if at < chars.len() => { chars.remove(at); }
            None => {}
        }
        let text: String = chars.into_iter().collect();
        if let Ok(parsed) = parse(&text) {
            prop_assert_eq!(parse(&parsed.to_string()), Ok(parsed));
        }
    }
}

fn bad_value(name: &str, value: &str, expected: &'static str) -> UriError {
    UriError::BadOptionValue {
        name: name.into(),
        value: value.into(),
        expected,
    }
}

fn unknown(name: &str, uri: &str) -> UriError {
    UriError::UnknownOption {
        name: name.into(),
        uri: uri.into(),
    }
}

const BOOL: &str = "true or false";
const MS: &str = "a number of milliseconds, 0 or more";
const ATTEMPTS: &str = "-1 (no limit), 0 or a positive number of attempts";
const EXPONENT: &str = "a number of at least 1.0";

#[test]
fn malformed_uris_give_the_error_naming_them() {
    let f = |s: &str| s.to_owned();
    let cases: Vec<(&str, UriError)> = vec![
        // Empty.
        ("", UriError::Empty),
        (" \t ", UriError::Empty),
        // Schemes.
        ("udp://a:1", UriError::UnknownScheme(f("udp://a:1"))),
        ("nio://a:1", UriError::UnknownScheme(f("nio://a:1"))),
        ("a:1", UriError::UnknownScheme(f("a:1"))),
        ("tcp:/a:1", UriError::UnknownScheme(f("tcp:/a:1"))),
        (
            "failover:(nio://a:1)",
            UriError::UnknownScheme(f("nio://a:1")),
        ),
        (
            "failover:tcp://a:1,udp://b:2",
            UriError::UnknownScheme(f("udp://b:2")),
        ),
        // Hosts.
        ("tcp://:1", UriError::MissingHost(f("tcp://:1"))),
        ("tcp://", UriError::MissingHost(f("tcp://"))),
        (
            "tcp://?keepAlive=true",
            UriError::MissingHost(f("tcp://?keepAlive=true")),
        ),
        ("tcp://a b:1", UriError::BadHost(f("tcp://a b:1"))),
        ("tcp://user@a:1", UriError::BadHost(f("tcp://user@a:1"))),
        (
            "tcp://999.1.1.1:1",
            UriError::BadHost(f("tcp://999.1.1.1:1")),
        ),
        ("tcp://::1:61613", UriError::BadHost(f("tcp://::1:61613"))),
        ("tcp://[zz]:1", UriError::BadHost(f("tcp://[zz]:1"))),
        ("tcp://[::1:1", UriError::BadHost(f("tcp://[::1:1"))),
        // Ports.
        ("tcp://a", UriError::MissingPort(f("tcp://a"))),
        ("tcp://a:", UriError::MissingPort(f("tcp://a:"))),
        ("tcp://[::1]", UriError::MissingPort(f("tcp://[::1]"))),
        ("tcp://[::1]:", UriError::MissingPort(f("tcp://[::1]:"))),
        ("tcp://a:0", UriError::BadPort(f("tcp://a:0"))),
        ("tcp://a:65536", UriError::BadPort(f("tcp://a:65536"))),
        ("tcp://a:+1", UriError::BadPort(f("tcp://a:+1"))),
        ("tcp://a:x", UriError::BadPort(f("tcp://a:x"))),
        ("tcp://a:1/", UriError::BadPort(f("tcp://a:1/"))),
        ("tcp://[::1]x", UriError::BadPort(f("tcp://[::1]x"))),
        (
            "failover:(tcp://a:1,tcp://b)",
            UriError::MissingPort(f("tcp://b")),
        ),
        // Parentheses and list structure.
        (
            "failover:(tcp://a:1",
            UriError::UnbalancedParentheses(f("failover:(tcp://a:1")),
        ),
        (
            "failover:tcp://a:1)",
            UriError::UnbalancedParentheses(f("failover:tcp://a:1)")),
        ),
        (
            "failover:((tcp://a:1))",
            UriError::UnbalancedParentheses(f("failover:((tcp://a:1))")),
        ),
        (
            "failover:(tcp://a:1))",
            UriError::UnbalancedParentheses(f("failover:(tcp://a:1))")),
        ),
        (
            "failover:(failover:(tcp://a:1))",
            UriError::UnbalancedParentheses(f("failover:(failover:(tcp://a:1))")),
        ),
        (
            "failover:(tcp://a:1)x",
            UriError::TrailingText {
                text: f("x"),
                uri: f("failover:(tcp://a:1)x"),
            },
        ),
        ("failover:", UriError::EmptyBrokerList(f("failover:"))),
        ("failover:()", UriError::EmptyBrokerList(f("failover:()"))),
        ("failover:( )", UriError::EmptyBrokerList(f("failover:( )"))),
        (
            "failover:()?randomize=false",
            UriError::EmptyBrokerList(f("failover:()?randomize=false")),
        ),
        (
            "failover:(tcp://a:1,,tcp://b:1)",
            UriError::EmptyBrokerEntry(f("failover:(tcp://a:1,,tcp://b:1)")),
        ),
        (
            "failover:(tcp://a:1,)",
            UriError::EmptyBrokerEntry(f("failover:(tcp://a:1,)")),
        ),
        (
            "failover:tcp://a:1,",
            UriError::EmptyBrokerEntry(f("failover:tcp://a:1,")),
        ),
        // Query syntax.
        (
            "tcp://a:1?keepAlive",
            UriError::MalformedOption {
                text: f("keepAlive"),
                uri: f("tcp://a:1?keepAlive"),
            },
        ),
        (
            "failover:(tcp://a:1)?=1",
            UriError::MalformedOption {
                text: f("=1"),
                uri: f("failover:(tcp://a:1)?=1"),
            },
        ),
        (
            "tcp://a:1?keepAlive=true&keepAlive=false",
            UriError::DuplicateOption {
                name: f("keepAlive"),
                uri: f("tcp://a:1?keepAlive=true&keepAlive=false"),
            },
        ),
        (
            "failover:(tcp://a:1)?randomize=true&randomize=false",
            UriError::DuplicateOption {
                name: f("randomize"),
                uri: f("failover:(tcp://a:1)?randomize=true&randomize=false"),
            },
        ),
        // Unknown options: outer, inner, nested, misplaced, wrong case, unsupported.
        (
            "tcp://a:1?soTimeout=5",
            unknown("soTimeout", "tcp://a:1?soTimeout=5"),
        ),
        (
            "tcp://a:1?randomize=false",
            unknown("randomize", "tcp://a:1?randomize=false"),
        ),
        (
            "failover:(tcp://a:1)?keepAlive=true",
            unknown("keepAlive", "failover:(tcp://a:1)?keepAlive=true"),
        ),
        (
            "failover:(tcp://a:1)?Randomize=false",
            unknown("Randomize", "failover:(tcp://a:1)?Randomize=false"),
        ),
        (
            "failover:(tcp://a:1)?trackMessages=true",
            unknown("trackMessages", "failover:(tcp://a:1)?trackMessages=true"),
        ),
        (
            "failover:(tcp://a:1?foo=1)",
            unknown("foo", "tcp://a:1?foo=1"),
        ),
        (
            "failover:(tcp://a:1)?nested.foo=1",
            unknown("nested.foo", "failover:(tcp://a:1)?nested.foo=1"),
        ),
        (
            "failover:(tcp://a:1)?nested.randomize=false",
            unknown(
                "nested.randomize",
                "failover:(tcp://a:1)?nested.randomize=false",
            ),
        ),
        // Values.
        (
            "failover:(tcp://a:1)?randomize=maybe",
            bad_value("randomize", "maybe", BOOL),
        ),
        (
            "failover:(tcp://a:1)?backup=",
            bad_value("backup", "", BOOL),
        ),
        (
            "failover:(tcp://a:1)?maxReconnectDelay=-5",
            bad_value("maxReconnectDelay", "-5", MS),
        ),
        (
            "failover:(tcp://a:1)?initialReconnectDelay=1.5",
            bad_value("initialReconnectDelay", "1.5", MS),
        ),
        (
            "failover:(tcp://a:1)?reconnectDelayExponent=0.5",
            bad_value("reconnectDelayExponent", "0.5", EXPONENT),
        ),
        (
            "failover:(tcp://a:1)?reconnectDelayExponent=NaN",
            bad_value("reconnectDelayExponent", "NaN", EXPONENT),
        ),
        (
            "failover:(tcp://a:1)?reconnectDelayExponent=inf",
            bad_value("reconnectDelayExponent", "inf", EXPONENT),
        ),
        (
            "failover:(tcp://a:1)?maxReconnectAttempts=-2",
            bad_value("maxReconnectAttempts", "-2", ATTEMPTS),
        ),
        (
            "failover:(tcp://a:1)?startupMaxReconnectAttempts=x",
            bad_value("startupMaxReconnectAttempts", "x", ATTEMPTS),
        ),
        (
            "failover:(tcp://a:1)?timeout=-2",
            bad_value(
                "timeout",
                "-2",
                "-1 (no timeout) or a number of milliseconds",
            ),
        ),
        (
            "failover:(tcp://a:1)?backupPoolSize=0",
            bad_value("backupPoolSize", "0", "a number of connections, 1 or more"),
        ),
        (
            "tcp://a:1?connectionTimeout=-1",
            bad_value("connectionTimeout", "-1", MS),
        ),
        (
            "tcp://a:1?wireFormat.maxInactivityDuration=+5",
            bad_value("wireFormat.maxInactivityDuration", "+5", MS),
        ),
        (
            "failover:(tcp://a:1)?nested.keepAlive=maybe",
            bad_value("nested.keepAlive", "maybe", BOOL),
        ),
        (
            "failover:(tcp://a:1)?priorityURIs=tcp://a:1?keepAlive=true",
            bad_value(
                "priorityURIs",
                "tcp://a:1?keepAlive=true",
                "comma-separated tcp://host:port URIs without options",
            ),
        ),
        (
            "failover:(tcp://a:1)?priorityURIs=tcp://a:1,,tcp://b:2",
            bad_value(
                "priorityURIs",
                "tcp://a:1,,tcp://b:2",
                "comma-separated tcp://host:port URIs without options",
            ),
        ),
        (
            "failover:(tcp://a:1)?priorityURIs=nio://a:1",
            UriError::UnknownScheme(f("nio://a:1")),
        ),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in &cases {
        let got = parse(text);
        if got.as_ref() != Err(expected) {
            wrong.push(format!("{text:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn broker_list_length_is_bounded() {
    let list = |n: usize| vec!["tcp://a:1"; n].join(",");
    assert_eq!(
        parse(&format!("failover:({})", list(MAX_BROKERS + 1))),
        Err(UriError::TooManyBrokers {
            count: MAX_BROKERS + 1,
            max: MAX_BROKERS
        })
    );
    assert_eq!(
        parse(&format!(
            "failover:(tcp://a:1)?priorityURIs={}",
            list(MAX_BROKERS + 1)
        )),
        Err(UriError::TooManyBrokers {
            count: MAX_BROKERS + 1,
            max: MAX_BROKERS
        })
    );
}

#[test]
fn error_messages_quote_the_text() {
    let message = parse("failover:(tcp://a:1)?randomize=maybe")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("randomize") && message.contains("maybe"),
        "{message}"
    );
    let message = parse("tcp://a:99999").unwrap_err().to_string();
    assert!(message.contains("tcp://a:99999"), "{message}");
}
