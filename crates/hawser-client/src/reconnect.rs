//! The failover policy as a pure state machine: which broker to connect to, when, and when to
//! give up, with ActiveMQ's `FailoverTransport` options and, where it has them, its meanings.
//!
//! There are no sockets and no clocks here. The caller (the client's supervisor task) passes
//! the time in milliseconds into every call, performs what [`Reconnector::poll`] asks, and
//! reports back:
//!
//! ```text
//!            poll(now) ──► Connect(uri) ──► caller connects ──► connect_succeeded / connect_failed
//!                     ──► WaitUntil(t)  ──► caller sleeps until t, polls again
//!                     ──► Idle          ──► nothing to do until the caller reports something
//!                     ──► GiveUp(why)   ──► final: fail pending work with `why`
//! connected, socket breaks ──► disconnected(now) ──► poll again
//! ```
//!
//! Randomness (the `randomize` shuffle) comes from a small PRNG seeded by the caller, so a
//! seed replays a whole schedule; tests and simulations print the seed of a failure.
//!
//! ```
//! use hawser_client::reconnect::{Reconnector, Step};
//! use hawser_client::uri::{parse, ConnectUri};
//!
//! let ConnectUri::Failover { brokers, options } =
//!     parse("failover:(tcp://a:1,tcp://b:1)?randomize=false&maxReconnectAttempts=2")?
//! else { unreachable!() };
//! let (a, b) = (brokers[0].clone(), brokers[1].clone());
//! let mut policy = Reconnector::new(brokers, options, 7);
//! assert_eq!(policy.poll(0), Step::Connect(a.clone()));
//! policy.connect_failed(&a, 5);
//! assert_eq!(policy.poll(5), Step::Connect(b.clone()));
//! policy.connect_succeeded(&b, 6);
//! assert_eq!(policy.connected_to(), Some(&b));
//! assert_eq!(policy.poll(6), Step::Idle);
//! # Ok::<(), hawser_client::uri::UriError>(())
//! ```
//!
//! # Definitions
//!
//! - **Outage.** The time between startup (or [`Reconnector::disconnected`]) and the next
//!   successful connection.
//! - **Pass.** One try of every broker in the list, each once, in the pass order below: poll
//!   hands out one `Connect` at a time and waits (`Idle`) for its result. A pass fails when its
//!   last broker fails. Brokers added by [`Reconnector::update_uris`] join from the next pass.
//! - **Pass order.** (1) In the first pass after a disconnect, when `backup` is on: the brokers
//!   [`Reconnector::backups_wanted`] named just before the disconnect, since the caller holds
//!   warm connections to them. (2) With `priorityBackup`: the priority brokers, in their
//!   order. (3) The other brokers, in list order, or shuffled afresh for each pass when
//!   `randomize` is on. Then, as ActiveMQ does, the broker whose connection just broke is
//!   moved to the end of every pass of that outage: it is the one most likely still down.
//! - **Delays.** The first pass of an outage starts at once, after a disconnect too. After each
//!   failed pass the caller waits the current delay, measured from the failure of the pass's
//!   last broker. The first delay is `initialReconnectDelay`; after each wait it becomes
//!   `floor(delay × reconnectDelayExponent)` when `useExponentialBackOff` is on, and stays
//!   as it is when off; it is never more than `maxReconnectDelay` (the initial one
//!   included). A successful connection resets it. With the defaults: 10, 20, 40, ...,
//!   20480, 30000, 30000, ... ms.
//! - **Attempts.** ActiveMQ counts a failed pass as one failed attempt, and so do we. The
//!   limit is `startupMaxReconnectAttempts` before the first successful connection unless
//!   it is -1, otherwise `maxReconnectAttempts`. With limit -1 there is no limit; with limit
//!   n ≥ 0 the policy gives up when a pass fails and n or more passes of this outage have
//!   failed, so 0 and 1 both mean one pass. Except: after a disconnect with
//!   `maxReconnectAttempts=0` it gives up at once without a pass (reconnect is disabled;
//!   [`GiveUpReason::ReconnectDisabled`]). A successful connection resets the count.
//!   [`Reconnector::direct`] is the policy with both limits 0: one pass at startup, no
//!   reconnect.
//! - **Priority.** With `priorityBackup`, the priority brokers are those of `priorityURIs`
//!   (matched by host and port; ones not in the list are appended to it), or the first broker
//!   of the list when that is empty. Without `priorityBackup` there are none, as in ActiveMQ.
//!   While connected to a non-priority broker, [`Reconnector::priority_probe`] hands out the
//!   priority brokers one at a time for a trial connection: one round tries each once, a
//!   failed trial moves straight on to the next, and the rounds are spaced by the same delay
//!   sequence as passes, the first one starting `initialReconnectDelay` after connecting.
//! - **Backups.** With `backup`, while connected, [`Reconnector::backups_wanted`] names the
//!   first `backupPoolSize` brokers of the list other than the connected one. The caller
//!   keeps warm connections to them; they go first in the pass after a disconnect.
//! - **Send timeout.** `timeout` > 0: a send waiting for a connection since `t` fails at
//!   `t + timeout`. -1 and 0 wait forever (ActiveMQ also only acts on values above 0).
//! - **Advertised brokers.** With `updateURIsSupported`, [`Reconnector::update_uris`] appends
//!   the brokers it has not got (by host and port), up to [`MAX_BROKERS`] in all. Nothing
//!   is ever removed: the user's brokers are the ones known to be meant, so they stay.
//!
//! Reports that do not fit the state are ignored rather than trusted: a `connect_failed` for
//! a broker that is not being tried, a `disconnected` while not connected, anything after
//! `GiveUp`. One report is trusted even unasked for: `connect_succeeded` for a listed broker
//! while disconnected (the caller used a warm backup) makes it the connection.
//!
//! # Departures from ActiveMQ
//!
//! - Once it has been connected, ActiveMQ also sleeps the current delay *before* each pass, so
//!   after a disconnect it waits `initialReconnectDelay` before the first pass, and later
//!   passes are two sleeps apart (the delay, then the grown delay). Here the first pass after
//!   a disconnect starts at once and exactly one delay separates passes, as at startup.
//! - ActiveMQ lets `initialReconnectDelay` exceed `maxReconnectDelay`; here it is capped.
//! - ActiveMQ reaches priority brokers only through its backup connections and does not
//!   reorder its passes; here they also lead every pass, so a client restarting while the
//!   priority broker is up lands there directly.
//! - ActiveMQ replaces its list with an advertised one; here advertised brokers are added.

use crate::uri::{BrokerUri, ConnectUri, FailoverOptions, MAX_BROKERS, UNLIMITED};

/// What the caller should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Connect to this broker now, then report with `connect_succeeded` or `connect_failed`.
    Connect(BrokerUri),
    /// Nothing before this time (ms); poll again then.
    WaitUntil(u64),
    /// Nothing to do until the caller reports an event: it is connected, or the connect
    /// attempt handed out last has not been reported yet.
    Idle,
    /// Stop: no more connections will be attempted. Every later poll says the same.
    GiveUp(GiveUpReason),
}

/// Why the policy gave up.
#[non_exhaustive]
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The allowed number of passes over the broker list failed.
    #[error("no broker reachable after {failed_passes} attempt(s) over the broker list")]
    AttemptsExhausted {
        /// Passes failed in the outage.
        failed_passes: u64,
    },
    /// The connection broke and `maxReconnectAttempts=0` forbids reconnecting.
    #[error("the connection broke and reconnecting is disabled")]
    ReconnectDisabled,
    /// The broker list is empty.
    #[error("no brokers to connect to")]
    NoBrokers,
}

/// The failover policy for one client connection. See the module docs for what it decides.
#[derive(Clone, Debug)]
pub struct Reconnector {
    /// The brokers: the user's, then priority and advertised ones appended. Only ever grows,
    /// so indices into it stay valid; all other fields refer to brokers by index.
    brokers: Vec<BrokerUri>,
    /// Indices of the priority brokers, in priority order; empty unless `priority_backup`.
    priority: Vec<usize>,
    /// The policy as parsed.
    options: FailoverOptions,
    /// Shuffles pass orders; seeded by the caller.
    rng: Rng,
    /// Connecting, connected, or given up.
    state: State,
    /// Whether any connection ever succeeded: selects which attempt limit applies.
    ever_connected: bool,
}

/// Where the policy is.
#[derive(Clone, Debug)]
enum State {
    /// Not connected: working through passes.
    Connecting(Outage),
    /// Connected to `brokers[index]`, perhaps probing a priority broker.
    Connected { index: usize, probe: Probe },
    /// Final.
    GaveUp(GiveUpReason),
}

/// Progress through one outage.
#[derive(Clone, Debug)]
struct Outage {
    /// The current pass's order (indices); empty before the first pass.
    pass: Vec<usize>,
    /// Position in `pass` of the next broker to hand out; `pass.len()` when it is used up.
    next: usize,
    /// The broker handed out and not yet reported on.
    in_flight: Option<usize>,
    /// No new pass starts before this time (ms).
    not_before_ms: u64,
    /// The wait after the next failed pass (ms).
    delay_ms: u64,
    /// Passes failed so far in this outage.
    failed_passes: u64,
    /// The broker whose connection broke, which goes last in each pass.
    dropped: Option<usize>,
    /// Brokers with warm spare connections, first in the first pass.
    spares: Vec<usize>,
}

/// Progress of trial connections to the priority brokers while connected elsewhere.
#[derive(Clone, Debug)]
struct Probe {
    /// The priority broker handed out by `priority_probe` and not yet reported on.
    in_flight: Option<usize>,
    /// Position in `Reconnector::priority` of the next one to try in this round.
    next: usize,
    /// No new round starts before this time (ms).
    not_before_ms: u64,
    /// The wait after the next failed round (ms).
    delay_ms: u64,
}

impl Reconnector {
    /// A policy over `brokers` (tried in this order unless `randomize`). Brokers listed twice
    /// (same host and port) keep their first entry; `priority_uris` not in the list are
    /// appended to it. `seed` seeds the shuffle.
    #[must_use]
    pub fn new(brokers: Vec<BrokerUri>, options: FailoverOptions, seed: u64) -> Reconnector {
        let mut list: Vec<BrokerUri> = Vec::with_capacity(brokers.len());
        for broker in brokers {
            push_new(&mut list, broker);
        }
        let priority = if !options.priority_backup || list.is_empty() {
            Vec::new()
        } else if options.priority_uris.is_empty() {
            vec![0]
        } else {
            let mut priority = Vec::new();
            for uri in &options.priority_uris {
                push_new(&mut list, uri.clone());
                if let Some(index) = list.iter().position(|b| b.same_address(uri)) {
                    if !priority.contains(&index) {
                        priority.push(index);
                    }
                }
            }
            priority
        };
        let mut policy = Reconnector {
            brokers: list,
            priority,
            options,
            rng: Rng::new(seed),
            state: State::GaveUp(GiveUpReason::NoBrokers),
            ever_connected: false,
        };
        if !policy.brokers.is_empty() {
            policy.state = State::Connecting(policy.new_outage(0, None, Vec::new()));
        }
        policy
    }

    /// The policy of a plain `tcp://host:port` URI: one pass (one try) at startup, no
    /// reconnect, no advertised brokers.
    #[must_use]
    pub fn direct(uri: BrokerUri) -> Reconnector {
        let options = FailoverOptions {
            max_reconnect_attempts: 0,
            startup_max_reconnect_attempts: 0,
            randomize: false,
            update_uris_supported: false,
            ..FailoverOptions::default()
        };
        // One broker and no shuffle: the seed is never used.
        Reconnector::new(vec![uri], options, 0)
    }

    /// The policy a parsed URI asks for.
    #[must_use]
    pub fn for_uri(uri: ConnectUri, seed: u64) -> Reconnector {
        match uri {
            ConnectUri::Direct(broker) => Reconnector::direct(broker),
            ConnectUri::Failover { brokers, options } => Reconnector::new(brokers, options, seed),
        }
    }

    /// What to do now.
    #[must_use]
    pub fn poll(&mut self, now_ms: u64) -> Step {
        if let State::Connecting(outage) = &self.state {
            if outage.in_flight.is_none()
                && outage.next == outage.pass.len()
                && now_ms >= outage.not_before_ms
            {
                let order = self.pass_order();
                let State::Connecting(outage) = &mut self.state else {
                    unreachable!("checked above");
                };
                outage.pass = order;
                outage.next = 0;
            }
        }
        match &mut self.state {
            State::GaveUp(reason) => Step::GiveUp(reason.clone()),
            State::Connected { .. } => Step::Idle,
            State::Connecting(outage) => {
                if outage.in_flight.is_some() {
                    Step::Idle
                } else if outage.next < outage.pass.len() {
                    let index = outage.pass[outage.next];
                    outage.next += 1;
                    outage.in_flight = Some(index);
                    Step::Connect(self.brokers[index].clone())
                } else {
                    Step::WaitUntil(outage.not_before_ms)
                }
            }
        }
    }

    /// The caller connected to `uri`: the broker `poll` or `priority_probe` handed out, or,
    /// while disconnected, any listed broker (a warm backup). After a successful priority
    /// probe the caller switches to the new connection and closes the old one without
    /// calling [`Reconnector::disconnected`].
    pub fn connect_succeeded(&mut self, uri: &BrokerUri, now_ms: u64) {
        let Some(index) = self.index_of(uri) else {
            return;
        };
        let accept = match &self.state {
            State::Connecting(_) => true,
            State::Connected { probe, .. } => probe.in_flight == Some(index),
            State::GaveUp(_) => false,
        };
        if accept {
            self.ever_connected = true;
            let probe = self.new_probe(now_ms);
            self.state = State::Connected { index, probe };
        }
    }

    /// The caller could not connect to `uri`, handed out by `poll` or `priority_probe`.
    pub fn connect_failed(&mut self, uri: &BrokerUri, now_ms: u64) {
        let Some(index) = self.index_of(uri) else {
            return;
        };
        let limit = self.attempt_limit();
        let priority_count = self.priority.len();
        let options = &self.options;
        let grow = |delay| grow(options, delay);
        match &mut self.state {
            State::Connecting(outage) if outage.in_flight == Some(index) => {
                outage.in_flight = None;
                if outage.next < outage.pass.len() {
                    return;
                }
                outage.failed_passes += 1;
                if limit.is_some_and(|limit| outage.failed_passes >= limit) {
                    let failed_passes = outage.failed_passes;
                    self.state = State::GaveUp(GiveUpReason::AttemptsExhausted { failed_passes });
                    return;
                }
                outage.not_before_ms = now_ms.saturating_add(outage.delay_ms);
                outage.delay_ms = grow(outage.delay_ms);
            }
            State::Connected { probe, .. } if probe.in_flight == Some(index) => {
                probe.in_flight = None;
                probe.next += 1;
                if probe.next == priority_count {
                    probe.next = 0;
                    probe.not_before_ms = now_ms.saturating_add(probe.delay_ms);
                    probe.delay_ms = grow(probe.delay_ms);
                }
            }
            _ => {}
        }
    }

    /// The established connection broke at `now_ms`. The first reconnect pass may start at
    /// once.
    pub fn disconnected(&mut self, now_ms: u64) {
        let State::Connected { index, .. } = self.state else {
            return;
        };
        if self.options.max_reconnect_attempts == 0 {
            self.state = State::GaveUp(GiveUpReason::ReconnectDisabled);
            return;
        }
        let spares = self.backup_indices(index);
        self.state = State::Connecting(self.new_outage(now_ms, Some(index), spares));
    }

    /// Brokers advertised by the connected broker. Ignored unless `updateURIsSupported`;
    /// otherwise the ones not yet listed (by host and port) are appended in the given order,
    /// while the list has fewer than [`MAX_BROKERS`]. They join from the next pass.
    pub fn update_uris(&mut self, uris: Vec<BrokerUri>) {
        if !self.options.update_uris_supported {
            return;
        }
        for uri in uris {
            push_new(&mut self.brokers, uri);
        }
    }

    /// The current broker list: the user's brokers in their order, then appended ones.
    #[must_use]
    pub fn brokers(&self) -> &[BrokerUri] {
        &self.brokers
    }

    /// The broker connected to, if any.
    #[must_use]
    pub fn connected_to(&self) -> Option<&BrokerUri> {
        match self.state {
            State::Connected { index, .. } => Some(&self.brokers[index]),
            _ => None,
        }
    }

    /// With `priorityBackup`, while connected to a non-priority broker: the priority broker to
    /// try a second connection to now, if one is due and none is being tried. The caller
    /// reports the trial with `connect_succeeded` (and then switches to it) or
    /// `connect_failed`.
    pub fn priority_probe(&mut self, now_ms: u64) -> Option<BrokerUri> {
        let State::Connected { index, probe } = &mut self.state else {
            return None;
        };
        if self.priority.is_empty()
            || self.priority.contains(index)
            || probe.in_flight.is_some()
            || now_ms < probe.not_before_ms
        {
            return None;
        }
        let candidate = self.priority[probe.next];
        probe.in_flight = Some(candidate);
        Some(self.brokers[candidate].clone())
    }

    /// With `backup`, while connected: the brokers to hold warm spare connections to, at most
    /// `backupPoolSize`, in list order, never the connected one. Empty otherwise.
    #[must_use]
    pub fn backups_wanted(&self) -> Vec<BrokerUri> {
        match self.state {
            State::Connected { index, .. } => self
                .backup_indices(index)
                .into_iter()
                .map(|i| self.brokers[i].clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// When a send waiting for a connection since `since_ms` must fail (`timeout` > 0), or
    /// `None` to wait for as long as it takes.
    #[must_use]
    pub fn send_deadline(&self, since_ms: u64) -> Option<u64> {
        u64::try_from(self.options.timeout_ms)
            .ok()
            .filter(|&timeout| timeout > 0)
            .map(|timeout| since_ms.saturating_add(timeout))
    }

    /// Whether no connection has succeeded yet (so `startupMaxReconnectAttempts` applies).
    #[must_use]
    pub fn is_startup(&self) -> bool {
        !self.ever_connected
    }

    /// Passes failed in the current outage (0 while connected), for logs.
    #[must_use]
    pub fn failed_passes(&self) -> u64 {
        match &self.state {
            State::Connecting(outage) => outage.failed_passes,
            State::GaveUp(GiveUpReason::AttemptsExhausted { failed_passes }) => *failed_passes,
            State::Connected { .. } | State::GaveUp(_) => 0,
        }
    }

    /// The policy's options.
    #[must_use]
    pub fn options(&self) -> &FailoverOptions {
        &self.options
    }

    fn index_of(&self, uri: &BrokerUri) -> Option<usize> {
        self.brokers.iter().position(|b| b.same_address(uri))
    }

    /// Failed passes allowed in this outage, or `None` for no limit.
    fn attempt_limit(&self) -> Option<u64> {
        let startup = self.options.startup_max_reconnect_attempts;
        let limit = if !self.ever_connected && startup != UNLIMITED {
            startup
        } else {
            self.options.max_reconnect_attempts
        };
        // Any negative value counts as unlimited; the parser only lets -1 through.
        u64::try_from(limit).ok()
    }

    /// The first delay of an outage or of probing.
    fn initial_delay(&self) -> u64 {
        self.options
            .initial_reconnect_delay_ms
            .min(self.options.max_reconnect_delay_ms)
    }

    fn new_outage(&self, now_ms: u64, dropped: Option<usize>, spares: Vec<usize>) -> Outage {
        Outage {
            pass: Vec::new(),
            next: 0,
            in_flight: None,
            not_before_ms: now_ms,
            delay_ms: self.initial_delay(),
            failed_passes: 0,
            dropped,
            spares,
        }
    }

    fn new_probe(&self, now_ms: u64) -> Probe {
        let first = self.initial_delay();
        Probe {
            in_flight: None,
            next: 0,
            not_before_ms: now_ms.saturating_add(first),
            delay_ms: grow(&self.options, first),
        }
    }

    /// The order of the next pass (see the module docs).
    fn pass_order(&mut self) -> Vec<usize> {
        let State::Connecting(outage) = &self.state else {
            return Vec::new();
        };
        let mut order: Vec<usize> = Vec::with_capacity(self.brokers.len());
        if outage.failed_passes == 0 {
            order.extend(&outage.spares);
        }
        let dropped = outage.dropped;
        let mut rest: Vec<usize> = (0..self.brokers.len())
            .filter(|i| !self.priority.contains(i))
            .collect();
        if self.options.randomize {
            self.rng.shuffle(&mut rest);
        }
        for &index in self.priority.iter().chain(&rest) {
            if !order.contains(&index) {
                order.push(index);
            }
        }
        if let Some(position) = dropped.and_then(|d| order.iter().position(|&i| i == d)) {
            let last = order.remove(position);
            order.push(last);
        }
        order
    }

    fn backup_indices(&self, connected: usize) -> Vec<usize> {
        if !self.options.backup {
            return Vec::new();
        }
        (0..self.brokers.len())
            .filter(|&i| i != connected)
            .take(usize::try_from(self.options.backup_pool_size).unwrap_or(usize::MAX))
            .collect()
    }
}

/// The delay that follows `delay_ms` under `options`.
fn grow(options: &FailoverOptions, delay_ms: u64) -> u64 {
    if !options.use_exponential_back_off {
        return delay_ms;
    }
    let exponent = options.reconnect_delay_exponent;
    // Hand-built options may hold what the parser refuses; below 1.0 or NaN, do not grow.
    let exponent = if exponent >= 1.0 { exponent } else { 1.0 };
    // `as` saturates; truncation matches ActiveMQ's `long *= double`.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let grown = (delay_ms as f64 * exponent) as u64;
    grown.max(delay_ms).min(options.max_reconnect_delay_ms)
}

/// Appends `uri` unless a broker with its address is listed or the list is full.
fn push_new(list: &mut Vec<BrokerUri>, uri: BrokerUri) {
    if list.len() < MAX_BROKERS && !list.iter().any(|b| b.same_address(&uri)) {
        list.push(uri);
    }
}

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators",
/// 2016): tiny, fast and good enough to shuffle a broker list; not for secrets.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // SplitMix64 scrambles the seed, so that nearby seeds start unrelated streams and seed
        // 0, a fixed point of xorshift, works.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0), by the multiply-shift method; the bias is below 2^-50 for
    /// lists of [`MAX_BROKERS`].
    fn below(&mut self, n: usize) -> usize {
        let scaled = (u128::from(self.next_u64()) * n as u128) >> 64;
        usize::try_from(scaled).expect("less than n")
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(name: &str) -> BrokerUri {
        BrokerUri::tcp(name, 61613)
    }

    fn brokers(names: &[&str]) -> Vec<BrokerUri> {
        names.iter().map(|n| broker(n)).collect()
    }

    fn ordered() -> FailoverOptions {
        FailoverOptions {
            randomize: false,
            ..FailoverOptions::default()
        }
    }

    /// Fails every broker handed out from `now` until the policy waits or gives up; returns the
    /// brokers tried and that step.
    fn fail_pass(policy: &mut Reconnector, now: u64) -> (Vec<String>, Step) {
        let mut tried = Vec::new();
        loop {
            match policy.poll(now) {
                Step::Connect(uri) => {
                    tried.push(uri.host.clone());
                    policy.connect_failed(&uri, now);
                }
                step => return (tried, step),
            }
        }
    }

    /// The waits between failed passes, failing everything from time 0.
    fn waits(policy: &mut Reconnector, passes: usize) -> Vec<u64> {
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..passes {
            match fail_pass(policy, now).1 {
                Step::WaitUntil(t) => {
                    waits.push(t - now);
                    now = t;
                }
                step => panic!("expected a wait, got {step:?}"),
            }
        }
        waits
    }

    fn connect(policy: &mut Reconnector, name: &str, now: u64) {
        let uri = broker(name);
        assert_eq!(policy.poll(now), Step::Connect(uri.clone()));
        policy.connect_succeeded(&uri, now);
        assert_eq!(policy.connected_to(), Some(&uri));
    }

    #[test]
    fn one_pass_tries_each_broker_once_in_order() {
        let mut policy = Reconnector::new(brokers(&["a", "b", "c"]), ordered(), 1);
        let (tried, step) = fail_pass(&mut policy, 0);
        assert_eq!(tried, ["a", "b", "c"]);
        assert_eq!(step, Step::WaitUntil(10));
        assert_eq!(policy.poll(9), Step::WaitUntil(10));
        assert_eq!(policy.poll(10), Step::Connect(broker("a")));
        assert_eq!(policy.poll(10), Step::Idle, "one attempt at a time");
    }

    #[test]
    fn default_back_off_doubles_up_to_the_max() {
        let mut policy = Reconnector::new(brokers(&["a"]), ordered(), 1);
        let waits = waits(&mut policy, 15);
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 30000, 30000, 30000]
        );
    }

    #[test]
    fn exponent_and_max_shape_the_delays() {
        let options = FailoverOptions {
            initial_reconnect_delay_ms: 100,
            max_reconnect_delay_ms: 1000,
            reconnect_delay_exponent: 1.5,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), options, 1);
        assert_eq!(
            waits(&mut policy, 8),
            [100, 150, 225, 337, 505, 757, 1000, 1000]
        );
    }

    #[test]
    fn without_back_off_the_delay_stays_initial() {
        let options = FailoverOptions {
            use_exponential_back_off: false,
            initial_reconnect_delay_ms: 50,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), options, 1);
        assert_eq!(waits(&mut policy, 4), [50, 50, 50, 50]);
    }

    #[test]
    fn initial_delay_is_capped_by_max() {
        let options = FailoverOptions {
            initial_reconnect_delay_ms: 500,
            max_reconnect_delay_ms: 200,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), options, 1);
        assert_eq!(waits(&mut policy, 3), [200, 200, 200]);
    }

    #[test]
    fn success_resets_delay_and_count_and_reconnect_starts_at_once() {
        let mut policy = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        waits(&mut policy, 3);
        assert_eq!(policy.failed_passes(), 3);
        connect(&mut policy, "a", 1000);
        assert_eq!(policy.failed_passes(), 0);
        assert!(!policy.is_startup());
        policy.disconnected(2000);
        // At once, and the broker that dropped us goes last.
        let (tried, step) = fail_pass(&mut policy, 2000);
        assert_eq!(tried, ["b", "a"]);
        assert_eq!(step, Step::WaitUntil(2010));
        let (tried, step) = fail_pass(&mut policy, 2010);
        assert_eq!(tried, ["b", "a"]);
        assert_eq!(step, Step::WaitUntil(2030));
    }

    #[test]
    fn max_attempts_n_gives_up_after_n_failed_passes() {
        let options = FailoverOptions {
            max_reconnect_attempts: 3,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b"]), options, 1);
        assert_eq!(fail_pass(&mut policy, 0).1, Step::WaitUntil(10));
        assert_eq!(fail_pass(&mut policy, 10).1, Step::WaitUntil(30));
        let gave_up = Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 3 });
        assert_eq!(
            fail_pass(&mut policy, 30),
            (vec!["a".into(), "b".into()], gave_up.clone())
        );
        assert_eq!(policy.poll(1_000_000), gave_up, "final");
        policy.connect_succeeded(&broker("a"), 1_000_000);
        assert_eq!(policy.connected_to(), None, "nothing after giving up");
    }

    #[test]
    fn zero_attempts_means_one_pass_at_startup_and_no_reconnect() {
        let options = FailoverOptions {
            max_reconnect_attempts: 0,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b"]), options.clone(), 1);
        assert_eq!(
            fail_pass(&mut policy, 0),
            (
                vec!["a".into(), "b".into()],
                Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 1 })
            )
        );

        let mut policy = Reconnector::new(brokers(&["a", "b"]), options, 1);
        connect(&mut policy, "a", 0);
        policy.disconnected(5);
        assert_eq!(
            policy.poll(5),
            Step::GiveUp(GiveUpReason::ReconnectDisabled)
        );
    }

    #[test]
    fn startup_limit_applies_only_before_the_first_connection() {
        let options = FailoverOptions {
            startup_max_reconnect_attempts: 2,
            max_reconnect_attempts: 4,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), options.clone(), 1);
        assert!(policy.is_startup());
        fail_pass(&mut policy, 0);
        assert_eq!(
            fail_pass(&mut policy, 10).1,
            Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 2 })
        );

        let mut policy = Reconnector::new(brokers(&["a"]), options, 1);
        fail_pass(&mut policy, 0);
        connect(&mut policy, "a", 10);
        policy.disconnected(20);
        let mut now = 20;
        for _ in 0..3 {
            let Step::WaitUntil(t) = fail_pass(&mut policy, now).1 else {
                panic!("maxReconnectAttempts=4 allows a 4th pass");
            };
            now = t;
        }
        assert_eq!(
            fail_pass(&mut policy, now).1,
            Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 4 })
        );
    }

    #[test]
    fn startup_unlimited_defers_to_max_attempts() {
        let options = FailoverOptions {
            max_reconnect_attempts: 1,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), options, 1);
        assert_eq!(
            fail_pass(&mut policy, 0).1,
            Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 1 })
        );
    }

    #[test]
    fn unlimited_attempts_never_give_up() {
        let mut policy = Reconnector::new(brokers(&["a"]), ordered(), 1);
        assert_eq!(waits(&mut policy, 200).len(), 200);
    }

    #[test]
    fn direct_tries_once_and_never_reconnects() {
        let mut policy = Reconnector::direct(broker("a"));
        assert_eq!(
            fail_pass(&mut policy, 0).1,
            Step::GiveUp(GiveUpReason::AttemptsExhausted { failed_passes: 1 })
        );
        let mut policy = Reconnector::direct(broker("a"));
        connect(&mut policy, "a", 0);
        policy.update_uris(brokers(&["b"]));
        assert_eq!(policy.brokers(), brokers(&["a"]), "no advertised peers");
        policy.disconnected(1);
        assert_eq!(
            policy.poll(1),
            Step::GiveUp(GiveUpReason::ReconnectDisabled)
        );
    }

    #[test]
    fn randomize_shuffles_each_pass_by_seed() {
        let names = ["a", "b", "c", "d", "e", "f"];
        let first_pass = |seed| {
            let mut policy = Reconnector::new(brokers(&names), FailoverOptions::default(), seed);
            fail_pass(&mut policy, 0).0
        };
        let orders: Vec<Vec<String>> = (0..8).map(first_pass).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, names, "a pass is a permutation");
        }
        assert_eq!(first_pass(3), first_pass(3), "a seed replays");
        assert_ne!(first_pass(1), first_pass(2));
        assert!(orders.iter().any(|o| o != &names), "some seed shuffles");

        let mut policy = Reconnector::new(brokers(&names), FailoverOptions::default(), 5);
        let passes: Vec<Vec<String>> = (0..4).map(|i| fail_pass(&mut policy, 1000 * i).0).collect();
        assert!(
            passes.windows(2).any(|w| w[0] != w[1]),
            "reshuffled per pass"
        );
    }

    #[test]
    fn without_randomize_every_pass_is_in_list_order() {
        let mut policy = Reconnector::new(brokers(&["c", "a", "b"]), ordered(), 9);
        for i in 0..3 {
            assert_eq!(fail_pass(&mut policy, 1000 * i).0, ["c", "a", "b"]);
        }
    }

    #[test]
    fn duplicates_keep_their_first_entry() {
        let policy = Reconnector::new(brokers(&["a", "b", "a"]), ordered(), 1);
        assert_eq!(policy.brokers(), brokers(&["a", "b"]));
    }

    #[test]
    fn priority_brokers_go_first_and_are_probed_back() {
        let options = FailoverOptions {
            priority_backup: true,
            randomize: true,
            ..FailoverOptions::default()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b", "c"]), options, 4);
        let (tried, _) = fail_pass(&mut policy, 0);
        assert_eq!(tried[0], "a", "the first broker is the priority one");

        // a is down: connect to whatever is next.
        let Step::Connect(a) = policy.poll(10) else {
            panic!()
        };
        assert_eq!(a.host, "a");
        policy.connect_failed(&a, 10);
        let Step::Connect(other) = policy.poll(10) else {
            panic!()
        };
        policy.connect_succeeded(&other, 10);

        assert_eq!(
            policy.priority_probe(15),
            None,
            "not before initialReconnectDelay"
        );
        assert_eq!(policy.priority_probe(20), Some(broker("a")));
        assert_eq!(policy.priority_probe(20), None, "one probe at a time");
        policy.connect_failed(&broker("a"), 25);
        // Rounds back off: 10 after connecting, then 20, 40.
        assert_eq!(policy.priority_probe(44), None);
        assert_eq!(policy.priority_probe(45), Some(broker("a")));
        policy.connect_failed(&broker("a"), 45);
        assert_eq!(policy.priority_probe(84), None);
        assert_eq!(policy.priority_probe(85), Some(broker("a")));
        policy.connect_succeeded(&broker("a"), 90);
        assert_eq!(policy.connected_to(), Some(&broker("a")));
        assert_eq!(
            policy.priority_probe(100_000),
            None,
            "on the priority broker"
        );
    }

    #[test]
    fn priority_uris_name_the_priority_brokers_in_order() {
        let options = FailoverOptions {
            priority_backup: true,
            priority_uris: brokers(&["c", "z"]),
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b", "c"]), options, 1);
        assert_eq!(
            policy.brokers(),
            brokers(&["a", "b", "c", "z"]),
            "z appended"
        );
        assert_eq!(fail_pass(&mut policy, 0).0, ["c", "z", "a", "b"]);

        connect(&mut policy, "c", 10);
        assert_eq!(policy.priority_probe(1000), None, "c is a priority broker");

        policy.disconnected(20);
        // c dropped us: it goes last, even though it has priority.
        assert_eq!(fail_pass(&mut policy, 20).0, ["z", "a", "b", "c"]);
        let Step::WaitUntil(t) = policy.poll(20) else {
            panic!()
        };
        connect(&mut policy, "z", t);
        assert_eq!(
            policy.priority_probe(t + 1000),
            None,
            "z is a priority broker too"
        );
    }

    #[test]
    fn a_failed_probe_moves_on_to_the_next_priority_broker_at_once() {
        let options = FailoverOptions {
            priority_backup: true,
            priority_uris: brokers(&["p", "q"]),
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "p", "q"]), options, 1);
        policy.connect_succeeded(&broker("a"), 0);
        assert_eq!(policy.connected_to(), Some(&broker("a")));
        assert_eq!(policy.priority_probe(10), Some(broker("p")));
        policy.connect_failed(&broker("p"), 11);
        assert_eq!(policy.priority_probe(11), Some(broker("q")));
        policy.connect_failed(&broker("q"), 12);
        assert_eq!(policy.priority_probe(31), None);
        assert_eq!(policy.priority_probe(32), Some(broker("p")));
        policy.connect_succeeded(&broker("p"), 33);
        assert_eq!(policy.connected_to(), Some(&broker("p")));
    }

    #[test]
    fn without_priority_backup_there_is_no_probe() {
        let mut policy = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        connect(&mut policy, "a", 0);
        assert_eq!(policy.priority_probe(1_000_000), None);
        policy.disconnected(1);
        connect(&mut policy, "b", 1);
        assert_eq!(policy.priority_probe(1_000_000), None);
    }

    #[test]
    fn backups_are_the_next_brokers_and_go_first_after_a_disconnect() {
        let options = FailoverOptions {
            backup: true,
            backup_pool_size: 2,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b", "c", "d"]), options, 1);
        assert!(policy.backups_wanted().is_empty(), "not while disconnected");
        let Step::Connect(a) = policy.poll(0) else {
            panic!()
        };
        policy.connect_failed(&a, 0);
        connect(&mut policy, "b", 0);
        assert_eq!(policy.backups_wanted(), brokers(&["a", "c"]));
        policy.disconnected(5);
        assert!(policy.backups_wanted().is_empty());
        assert_eq!(fail_pass(&mut policy, 5).0, ["a", "c", "d", "b"]);
        // Spares only lead the first pass.
        assert_eq!(fail_pass(&mut policy, 15).0, ["a", "c", "d", "b"]);

        let off = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        let mut off = off;
        connect(&mut off, "a", 0);
        assert!(off.backups_wanted().is_empty(), "backup=false");
    }

    #[test]
    fn default_backup_pool_is_one() {
        let options = FailoverOptions {
            backup: true,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a", "b", "c"]), options, 1);
        connect(&mut policy, "a", 0);
        assert_eq!(policy.backups_wanted(), brokers(&["b"]));
    }

    #[test]
    fn a_warm_backup_may_be_reported_while_disconnected() {
        let mut policy = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        assert_eq!(policy.poll(0), Step::Connect(broker("a")));
        policy.connect_succeeded(&broker("b"), 0);
        assert_eq!(policy.connected_to(), Some(&broker("b")));
        // While connected, only a probe's success may switch.
        policy.connect_succeeded(&broker("a"), 1);
        assert_eq!(policy.connected_to(), Some(&broker("b")));
    }

    #[test]
    fn stale_reports_are_ignored() {
        let mut policy = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        assert_eq!(policy.poll(0), Step::Connect(broker("a")));
        policy.connect_failed(&broker("b"), 0);
        policy.connect_failed(&broker("zz"), 0);
        assert_eq!(policy.poll(0), Step::Idle, "a is still being tried");
        policy.disconnected(0);
        assert_eq!(policy.poll(0), Step::Idle);
    }

    #[test]
    fn timeout_sets_a_send_deadline() {
        let policy = Reconnector::new(brokers(&["a"]), FailoverOptions::default(), 1);
        assert_eq!(policy.send_deadline(100), None, "default -1 blocks");
        let zero = FailoverOptions {
            timeout_ms: 0,
            ..FailoverOptions::default()
        };
        assert_eq!(
            Reconnector::new(brokers(&["a"]), zero, 1).send_deadline(100),
            None
        );
        let timeout = FailoverOptions {
            timeout_ms: 3000,
            ..FailoverOptions::default()
        };
        let policy = Reconnector::new(brokers(&["a"]), timeout, 1);
        assert_eq!(policy.send_deadline(100), Some(3100));
        assert_eq!(policy.send_deadline(u64::MAX), Some(u64::MAX));
    }

    #[test]
    fn update_uris_appends_new_brokers_from_the_next_pass() {
        let mut policy = Reconnector::new(brokers(&["a", "b"]), ordered(), 1);
        assert_eq!(policy.poll(0), Step::Connect(broker("a")));
        let mut upper = broker("B");
        upper.options.keep_alive = true;
        policy.update_uris(vec![broker("c"), upper, broker("a"), broker("d")]);
        assert_eq!(policy.brokers(), brokers(&["a", "b", "c", "d"]));
        policy.connect_failed(&broker("a"), 0);
        assert_eq!(
            fail_pass(&mut policy, 0).0,
            ["b"],
            "the current pass is unchanged"
        );
        assert_eq!(fail_pass(&mut policy, 10).0, ["a", "b", "c", "d"]);

        let off = FailoverOptions {
            update_uris_supported: false,
            ..ordered()
        };
        let mut policy = Reconnector::new(brokers(&["a"]), off, 1);
        policy.update_uris(brokers(&["b"]));
        assert_eq!(policy.brokers(), brokers(&["a"]));
    }

    #[test]
    fn update_uris_stops_at_max_brokers() {
        let mut policy = Reconnector::new(brokers(&["a"]), ordered(), 1);
        policy.update_uris(
            (0..MAX_BROKERS + 10)
                .map(|i| broker(&format!("h{i}")))
                .collect(),
        );
        assert_eq!(policy.brokers().len(), MAX_BROKERS);
        assert_eq!(policy.brokers()[0], broker("a"));
    }

    #[test]
    fn an_empty_list_gives_up_at_once() {
        let mut policy = Reconnector::new(Vec::new(), FailoverOptions::default(), 1);
        assert_eq!(policy.poll(0), Step::GiveUp(GiveUpReason::NoBrokers));
    }

    #[test]
    fn for_uri_follows_the_parsed_form() {
        let uri = crate::uri::parse("tcp://a:61613").unwrap();
        let mut policy = Reconnector::for_uri(uri, 1);
        assert_eq!(policy.options().max_reconnect_attempts, 0);
        assert_eq!(policy.poll(0), Step::Connect(broker("a")));
        let uri = crate::uri::parse("failover:(tcp://a:61613)?maxReconnectAttempts=7").unwrap();
        assert_eq!(
            Reconnector::for_uri(uri, 1)
                .options()
                .max_reconnect_attempts,
            7
        );
    }

    #[test]
    fn rng_is_deterministic_and_seed_zero_works() {
        let mut a = Rng::new(0);
        let mut b = Rng::new(0);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert!(xs.iter().all(|&x| x != 0));
        assert!((0..1000).all(|_| a.below(7) < 7));
    }
}
