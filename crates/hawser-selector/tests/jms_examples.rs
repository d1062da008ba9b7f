//! The examples of JMS 1.1 §3.8.1, and a few ActiveMQ users write, against property maps.
//!
//! Each row: a selector, the message's properties, and whether it matches. Properties are
//! given as STOMP would carry them (all strings) unless a typed value matters.

mod common;

use common::{props, s};
use hawser_selector::{Selector, Value};

struct Case {
    selector: &'static str,
    props: Vec<(&'static str, Value<'static>)>,
    matches: bool,
}

fn case<const N: usize>(
    selector: &'static str,
    props: [(&'static str, Value<'static>); N],
    matches: bool,
) -> Case {
    Case {
        selector,
        props: props.into(),
        matches,
    }
}

fn cases() -> Vec<Case> {
    let car = || {
        [
            ("JMSType", s("car")),
            ("color", s("blue")),
            ("weight", s("3000")),
        ]
    };
    vec![
        case(
            "JMSType = 'car' AND color = 'blue' AND weight > 2500",
            car(),
            true,
        ),
        case(
            "JMSType = 'car' AND color = 'blue' AND weight > 2500",
            [
                ("JMSType", s("car")),
                ("color", s("blue")),
                ("weight", s("2000")),
            ],
            false,
        ),
        case(
            "JMSType = 'car' AND color = 'blue' AND weight > 2500",
            [("JMSType", s("car")), ("color", s("blue"))],
            false,
        ),
        case(
            "JMSType = 'car' AND color = 'blue' AND weight > 2500",
            [
                ("JMSType", s("car")),
                ("color", s("blue")),
                ("weight", Value::Int(2501)),
            ],
            true,
        ),
        case("phone LIKE '12%3'", [("phone", s("123"))], true),
        case("phone LIKE '12%3'", [("phone", s("12993"))], true),
        case("phone LIKE '12%3'", [("phone", s("1234"))], false),
        case("word LIKE 'l_se'", [("word", s("lose"))], true),
        case("word LIKE 'l_se'", [("word", s("loose"))], false),
        case(
            "underscored LIKE '\\_%' ESCAPE '\\'",
            [("underscored", s("_foo"))],
            true,
        ),
        case(
            "underscored LIKE '\\_%' ESCAPE '\\'",
            [("underscored", s("bar"))],
            false,
        ),
        case("phone NOT LIKE '12%3'", [("phone", s("123"))], false),
        case("phone NOT LIKE '12%3'", [("phone", s("1234"))], true),
        case(
            "discount LIKE '100\\%' ESCAPE '\\'",
            [("discount", s("100%"))],
            true,
        ),
        case(
            "Country IN (' UK', 'US', 'France')",
            [("Country", s(" UK"))],
            true,
        ),
        case(
            "Country IN (' UK', 'US', 'France')",
            [("Country", s("UK"))],
            false,
        ),
        case(
            "Country IN (' UK', 'US', 'France')",
            [("Country", s("Peru"))],
            false,
        ),
        case(
            "Country NOT IN (' UK', 'US', 'France')",
            [("Country", s("Peru"))],
            true,
        ),
        case(
            "Country NOT IN (' UK', 'US', 'France')",
            [("Country", s("US"))],
            false,
        ),
        case("Country NOT IN (' UK', 'US', 'France')", [], false),
        case("age BETWEEN 15 AND 19", [("age", s("15"))], true),
        case("age BETWEEN 15 AND 19", [("age", s("19"))], true),
        case("age BETWEEN 15 AND 19", [("age", s("20"))], false),
        case("age NOT BETWEEN 15 AND 19", [("age", s("20"))], true),
        case("age NOT BETWEEN 15 AND 19", [("age", s("17"))], false),
        case("age >= 15 AND age <= 19", [("age", Value::Int(16))], true),
        case("prop_name IS NULL", [], true),
        case("prop_name IS NULL", [("prop_name", s(""))], false),
        case("prop_name IS NOT NULL", [("prop_name", s("x"))], true),
        case("prop_name IS NOT NULL", [], false),
        // A missing property never satisfies a comparison, either way round.
        case("color = 'red'", [], false),
        case("color <> 'red'", [], false),
        case("NOT (color = 'red')", [], false),
        case("color <> 'red'", [("color", s("blue"))], true),
        // Arithmetic and precedence.
        case(
            "price * quantity > 100",
            [("price", s("12.5")), ("quantity", s("10"))],
            true,
        ),
        case(
            "price * quantity > 100",
            [("price", s("12.5")), ("quantity", s("8"))],
            false,
        ),
        case("(a + b) / 2 = 5", [("a", s("4")), ("b", s("6"))], true),
        case("a = 1 OR b = 2 AND c = 3", [("a", s("1"))], true),
        case("(a = 1 OR b = 2) AND c = 3", [("a", s("1"))], false),
        // Booleans from STOMP headers.
        case("urgent", [("urgent", s("true"))], true),
        case("urgent", [("urgent", s("false"))], false),
        case("urgent = TRUE", [("urgent", s("TRUE"))], true),
        case("NOT urgent", [("urgent", s("false"))], true),
        case("NOT urgent", [], false),
        // ActiveMQ-style literals and keyword case.
        case("id = 0x1F", [("id", s("31"))], true),
        case("big = 10000000000L", [("big", s("10000000000"))], true),
        case("ratio < 1.5e0", [("ratio", s("1.25"))], true),
        case("ratio < .5", [("ratio", s("0.25"))], true),
        case(
            "color in ('red') or size between 1 and 2",
            [("size", s("1"))],
            true,
        ),
        case(
            "JMSPriority > 4 AND JMSDeliveryMode = 'PERSISTENT'",
            [
                ("JMSPriority", Value::Int(9)),
                ("JMSDeliveryMode", s("PERSISTENT")),
            ],
            true,
        ),
        case("name = 'O''Brien'", [("name", s("O'Brien"))], true),
    ]
}

#[test]
fn jms_examples() {
    let mut failures = Vec::new();
    for c in cases() {
        let selector = Selector::parse(c.selector)
            .unwrap_or_else(|e| panic!("{:?} should parse: {e}", c.selector));
        let p = props_of(&c.props);
        if selector.matches(&p) != c.matches {
            failures.push(format!(
                "{} with {:?}: expected {}",
                c.selector, c.props, c.matches
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn props_of(
    pairs: &[(&str, Value<'static>)],
) -> std::collections::BTreeMap<String, Value<'static>> {
    let mut map = props([]);
    for (k, v) in pairs {
        map.insert(k.to_string(), v.clone());
    }
    map
}
