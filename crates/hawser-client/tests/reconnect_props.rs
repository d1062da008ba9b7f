//! Seeded simulations of the reconnect policy: random option sets, random connect outcomes,
//! disconnects, priority probes and advertised brokers, checked against the definitions in
//! `hawser_client::reconnect` at every step. A failure prints the scenario (seed included),
//! which replays it exactly.

use hawser_client::reconnect::{GiveUpReason, Reconnector, Step};
use hawser_client::uri::{BrokerUri, FailoverOptions};
use proptest::prelude::*;

/// Polls per simulation: enough for many outages and for limits of a few passes.
const MAX_POLLS: usize = 400;
/// Random numbers per scenario; reused cyclically.
const DICE: usize = 64;

#[derive(Clone, Debug)]
struct Scenario {
    /// Brokers `b0..bN`.
    brokers: usize,
    options: FailoverOptions,
    seed: u64,
    /// Chance in 1000 that a connect attempt (or probe) succeeds.
    success_per_mille: u32,
    /// Drives outcomes and time steps.
    dice: Vec<u32>,
}

fn broker(i: usize) -> BrokerUri {
    BrokerUri::tcp(format!("b{i}"), 61613)
}

fn options(brokers: usize) -> impl Strategy<Value = FailoverOptions> {
    let delays = (0..200u64, 0..5000u64, any::<bool>(), 1.0..4.0f64);
    let limits = (-1..6i64, -1..6i64, any::<bool>(), -1..3000i64);
    let extras = (
        any::<bool>(),
        1..4u32,
        any::<bool>(),
        prop::collection::vec(0..brokers, 0..3),
        any::<bool>(),
    );
    (delays, limits, extras).prop_map(
        |(
            (initial, max, back_off, exponent),
            (attempts, startup, randomize, timeout),
            (backup, pool, priority_backup, priority, update),
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
            priority_uris: priority.into_iter().map(broker).collect(),
            update_uris_supported: update,
        },
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..6usize).prop_flat_map(|brokers| {
        (
            options(brokers),
            any::<u64>(),
            prop_oneof![Just(0u32), Just(1000), 0..1000u32],
            prop::collection::vec(any::<u32>(), DICE),
        )
            .prop_map(move |(options, seed, success_per_mille, dice)| Scenario {
                brokers,
                options,
                seed,
                success_per_mille,
                dice,
            })
    })
}

/// The scenario's random numbers, in a cycle.
struct Dice<'a> {
    values: &'a [u32],
    next: usize,
}

impl Dice<'_> {
    fn roll(&mut self) -> u32 {
        let value = self.values[self.next % self.values.len()];
        self.next += 1;
        value
    }

    /// True about once in `n` rolls.
    fn one_in(&mut self, n: u32) -> bool {
        self.roll() < u32::MAX / n
    }
}

/// What the simulation expects of the current outage.
#[derive(Default)]
struct Outage {
    /// Brokers tried in the current pass, in order.
    pass: Vec<BrokerUri>,
    /// The broker list when the current pass began.
    list: Vec<BrokerUri>,
    failed_passes: u64,
    /// The time the last broker of the last failed pass was reported failed.
    failed_at: u64,
    /// The previous wait of this outage.
    last_wait: Option<u64>,
    /// The broker that dropped the connection, if the outage followed a disconnect.
    dropped: Option<BrokerUri>,
    /// The warm spares named just before the disconnect.
    spares: Vec<BrokerUri>,
    /// Set right after a disconnect: the next poll must start a pass (or give up) at once.
    must_start_now: bool,
}

/// The priority brokers as the module docs define them, for a list without appended ones.
fn priority_set(s: &Scenario) -> Vec<BrokerUri> {
    if !s.options.priority_backup {
        return Vec::new();
    }
    if s.options.priority_uris.is_empty() {
        return vec![broker(0)];
    }
    let mut set: Vec<BrokerUri> = Vec::new();
    for uri in &s.options.priority_uris {
        if !set.contains(uri) {
            set.push(uri.clone());
        }
    }
    set
}

/// The attempt limit in force, `None` for unlimited.
fn limit(s: &Scenario, ever_connected: bool) -> Option<u64> {
    let startup = s.options.startup_max_reconnect_attempts;
    let limit = if !ever_connected && startup != -1 {
        startup
    } else {
        s.options.max_reconnect_attempts
    };
    u64::try_from(limit).ok()
}

/// Checks the order of a (possibly partial) pass against the definition.
fn check_pass_order(s: &Scenario, outage: &Outage, complete: bool) -> Result<(), TestCaseError> {
    let pass = &outage.pass;
    let first_pass = outage.failed_passes == 0;
    let mut head: Vec<BrokerUri> = Vec::new();
    if first_pass && s.options.backup {
        head.extend(outage.spares.iter().cloned());
    }
    for p in priority_set(s) {
        if !head.contains(&p) && Some(&p) != outage.dropped.as_ref() {
            head.push(p);
        }
    }
    let shown = head.len().min(pass.len());
    prop_assert_eq!(
        &pass[..shown],
        &head[..shown],
        "spares, then priority brokers"
    );
    if !s.options.randomize {
        let mut expected = head.clone();
        for b in &outage.list {
            if !expected.contains(b) && Some(b) != outage.dropped.as_ref() {
                expected.push(b.clone());
            }
        }
        if let Some(d) = &outage.dropped {
            expected.push(d.clone());
        }
        prop_assert_eq!(&pass[..], &expected[..pass.len()], "list order");
    }
    if complete {
        let mut sorted = pass.clone();
        sorted.sort_by(|a, b| a.host.cmp(&b.host));
        let mut list = outage.list.clone();
        list.sort_by(|a, b| a.host.cmp(&b.host));
        prop_assert_eq!(sorted, list, "a pass is a permutation of the list");
        if let Some(d) = &outage.dropped {
            prop_assert_eq!(pass.last(), Some(d), "the dropped broker goes last");
        }
    }
    Ok(())
}

/// One simulation run: the policy under test and what the definitions lead us to expect.
struct Sim<'a> {
    s: &'a Scenario,
    policy: Reconnector,
    dice: Dice<'a>,
    /// The simulated clock (ms).
    now: u64,
    ever_connected: bool,
    outage: Outage,
    /// The first wait of an outage, and the delay before the first priority probe.
    first_wait: u64,
    priority: Vec<BrokerUri>,
    /// Brokers named so far, advertised ones included: the next advertised one is `b{n}`.
    named: usize,
    /// Every step, to compare runs.
    trace: Vec<String>,
}

impl<'a> Sim<'a> {
    fn new(s: &'a Scenario) -> Sim<'a> {
        let initial: Vec<BrokerUri> = (0..s.brokers).map(broker).collect();
        Sim {
            s,
            policy: Reconnector::new(initial, s.options.clone(), s.seed),
            dice: Dice {
                values: &s.dice,
                next: 0,
            },
            now: 0,
            ever_connected: false,
            outage: Outage::default(),
            first_wait: s
                .options
                .initial_reconnect_delay_ms
                .min(s.options.max_reconnect_delay_ms),
            priority: priority_set(s),
            named: s.brokers,
            trace: Vec::new(),
        }
    }

    fn succeeds(&mut self) -> bool {
        self.dice.roll() % 1000 < self.s.success_per_mille
    }

    /// Polls until the policy gives up or `MAX_POLLS` is reached.
    fn run(mut self) -> Result<Vec<String>, TestCaseError> {
        let initial: Vec<BrokerUri> = (0..self.s.brokers).map(broker).collect();
        prop_assert_eq!(self.policy.brokers(), &initial[..]);
        let timeout = self.s.options.timeout_ms;
        prop_assert_eq!(
            self.policy.send_deadline(7),
            (timeout > 0).then(|| 7 + timeout.unsigned_abs())
        );
        for _ in 0..MAX_POLLS {
            let step = self.policy.poll(self.now);
            self.trace.push(format!("{}: {step:?}", self.now));
            if self.outage.must_start_now {
                prop_assert!(
                    matches!(step, Step::Connect(_) | Step::GiveUp(_)),
                    "the first pass after a disconnect starts at once, got {:?}",
                    step
                );
                self.outage.must_start_now = false;
            }
            match step {
                Step::Connect(uri) => self.connect(uri)?,
                Step::WaitUntil(until) => self.wait(until)?,
                Step::Idle => self.stay_connected()?,
                Step::GiveUp(reason) => {
                    self.gave_up(reason)?;
                    break;
                }
            }
        }
        Ok(self.trace)
    }

    fn connect(&mut self, uri: BrokerUri) -> Result<(), TestCaseError> {
        prop_assert!(
            self.policy.brokers().contains(&uri),
            "{:?} is not listed",
            uri
        );
        if self.outage.pass.is_empty() {
            self.outage.list = self.policy.brokers().to_vec();
        }
        prop_assert!(
            !self.outage.pass.contains(&uri),
            "{:?} twice in one pass",
            uri
        );
        self.outage.pass.push(uri.clone());
        prop_assert_eq!(
            self.policy.poll(self.now),
            Step::Idle,
            "one attempt at a time"
        );
        self.now += u64::from(self.dice.roll() % 50);
        if self.succeeds() {
            check_pass_order(self.s, &self.outage, false)?;
            self.policy.connect_succeeded(&uri, self.now);
            prop_assert_eq!(self.policy.connected_to(), Some(&uri));
            prop_assert_eq!(self.policy.failed_passes(), 0);
            self.ever_connected = true;
            self.outage = Outage::default();
        } else {
            self.policy.connect_failed(&uri, self.now);
            let complete = self.outage.pass.len() == self.outage.list.len();
            check_pass_order(self.s, &self.outage, complete)?;
            if complete {
                self.outage.failed_passes += 1;
                self.outage.failed_at = self.now;
                self.outage.pass.clear();
            }
        }
        Ok(())
    }

    fn wait(&mut self, until: u64) -> Result<(), TestCaseError> {
        let (now, outage) = (self.now, &mut self.outage);
        prop_assert!(outage.pass.is_empty(), "waits come only between passes");
        prop_assert!(until > now, "a wait in the past: {} at {}", until, now);
        prop_assert!(outage.failed_passes > 0);
        if let Some(limit) = limit(self.s, self.ever_connected) {
            prop_assert!(outage.failed_passes < limit, "should have given up");
        }
        let wait = until - outage.failed_at;
        let options = &self.s.options;
        prop_assert!(
            wait <= options.max_reconnect_delay_ms,
            "wait {} above max",
            wait
        );
        match outage.last_wait {
            None => prop_assert_eq!(wait, self.first_wait, "the first wait"),
            Some(last) if options.use_exponential_back_off => {
                prop_assert!(wait >= last, "waits shrank: {} after {}", wait, last);
            }
            Some(last) => prop_assert_eq!(wait, last, "no back-off"),
        }
        outage.last_wait = Some(wait);
        prop_assert_eq!(self.policy.failed_passes(), outage.failed_passes);
        // Waking early changes nothing.
        if self.dice.one_in(4) {
            let early = now + u64::from(self.dice.roll()) % (until - now);
            prop_assert_eq!(self.policy.poll(early), Step::WaitUntil(until));
        }
        self.now = until;
        Ok(())
    }

    /// Connected: check backups, probe the priority brokers for a while, take an advertised
    /// peer, then lose the connection.
    fn stay_connected(&mut self) -> Result<(), TestCaseError> {
        let connected = self.policy.connected_to().cloned();
        prop_assert!(connected.is_some(), "idle while nothing is in flight");
        let mut current = connected.unwrap_or_else(|| broker(0));
        let connected_at = self.now;

        let backups = self.policy.backups_wanted();
        if self.s.options.backup {
            let pool = self.s.options.backup_pool_size as usize;
            let expected: Vec<BrokerUri> = self
                .policy
                .brokers()
                .iter()
                .filter(|b| **b != current)
                .take(pool)
                .cloned()
                .collect();
            prop_assert_eq!(&backups, &expected);
        } else {
            prop_assert!(backups.is_empty());
        }

        for _ in 0..self.dice.roll() % 6 {
            self.now += u64::from(self.dice.roll() % 100);
            let Some(probe) = self.policy.priority_probe(self.now) else {
                continue;
            };
            prop_assert!(
                self.priority.contains(&probe),
                "probed non-priority {:?}",
                probe
            );
            prop_assert!(!self.priority.contains(&current), "probe while on priority");
            prop_assert!(
                self.now >= connected_at + self.first_wait,
                "probe too early"
            );
            prop_assert_eq!(self.policy.priority_probe(self.now), None, "one at a time");
            self.now += u64::from(self.dice.roll() % 20);
            if self.succeeds() {
                self.policy.connect_succeeded(&probe, self.now);
                prop_assert_eq!(self.policy.connected_to(), Some(&probe));
                current = probe;
            } else {
                self.policy.connect_failed(&probe, self.now);
                prop_assert_eq!(self.policy.connected_to(), Some(&current));
            }
        }

        if self.dice.one_in(3) {
            let mut expected = self.policy.brokers().to_vec();
            let peer = broker(self.named);
            self.policy.update_uris(vec![peer.clone(), broker(0)]);
            if self.s.options.update_uris_supported {
                expected.push(peer);
                self.named += 1;
            }
            prop_assert_eq!(self.policy.brokers(), &expected[..]);
        }

        self.now += u64::from(self.dice.roll() % 1000);
        let spares = self.policy.backups_wanted();
        self.policy.disconnected(self.now);
        prop_assert_eq!(self.policy.connected_to(), None);
        prop_assert!(self.policy.backups_wanted().is_empty());
        self.outage = Outage {
            dropped: Some(current),
            spares,
            must_start_now: true,
            ..Outage::default()
        };
        Ok(())
    }

    fn gave_up(&mut self, reason: GiveUpReason) -> Result<(), TestCaseError> {
        let limit = limit(self.s, self.ever_connected);
        let failed = self.outage.failed_passes;
        let expected = if limit == Some(0) && self.ever_connected && failed == 0 {
            GiveUpReason::ReconnectDisabled
        } else {
            prop_assert!(limit.is_some(), "gave up without a limit");
            prop_assert_eq!(
                failed,
                limit.unwrap_or(0).max(1),
                "gave up after the wrong number of passes"
            );
            GiveUpReason::AttemptsExhausted {
                failed_passes: failed,
            }
        };
        prop_assert_eq!(&reason, &expected);
        let later = self.now + 1_000_000;
        prop_assert_eq!(self.policy.poll(later), Step::GiveUp(reason), "final");
        Ok(())
    }
}

/// Runs a scenario, checking every step; returns the trace.
fn simulate(s: &Scenario) -> Result<Vec<String>, TestCaseError> {
    Sim::new(s).run()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_policy_keeps_its_definitions(s in scenario()) {
        simulate(&s)?;
    }

    #[test]
    fn a_seed_replays_the_same_schedule(s in scenario()) {
        prop_assert_eq!(simulate(&s)?, simulate(&s)?);
    }

    #[test]
    fn always_failing_gives_up_exactly_at_the_limit(
        brokers in 1..5usize,
        attempts in -1..8i64,
        startup in -1..8i64,
        seed in any::<u64>(),
    ) {
        let options = FailoverOptions {
            max_reconnect_attempts: attempts,
            startup_max_reconnect_attempts: startup,
            ..FailoverOptions::default()
        };
        let list: Vec<BrokerUri> = (0..brokers).map(broker).collect();
        let mut policy = Reconnector::new(list, options, seed);
        let limit = if startup != -1 { startup } else { attempts };
        let mut now = 0;
        let mut passes = 0u64;
        let mut connects = 0usize;
        loop {
            match policy.poll(now) {
                Step::Connect(uri) => {
                    connects += 1;
                    policy.connect_failed(&uri, now);
                }
                Step::WaitUntil(t) => {
                    passes += 1;
                    now = t;
                    if limit == -1 && passes == 50 {
                        break;
                    }
                }
                Step::GiveUp(reason) => {
                    passes += 1;
                    prop_assert_eq!(passes, u64::try_from(limit.max(1)).unwrap_or(0));
                    prop_assert_eq!(reason, GiveUpReason::AttemptsExhausted { failed_passes: passes });
                    break;
                }
                Step::Idle => prop_assert!(false, "idle with nothing in flight"),
            }
        }
        prop_assert_eq!(connects as u64, passes * brokers as u64);
    }
}
