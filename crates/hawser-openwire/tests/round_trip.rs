//! Property tests: any sequence of commands, encoded in any mode (tight or loose, cache on or
//! off, size prefix on or off, stack traces on or off, large or tiny caches) and fed to a
//! decoder in arbitrary pieces, decodes to the same commands.

mod common;
mod strategy;

use bytes::BytesMut;
use hawser_openwire::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Every switch combination, with version 12 and the given cache size.
fn modes(cache_size: u16) -> Vec<WireSettings> {
    let mut modes = Vec::new();
    for stack_trace in [false, true] {
        for mut settings in common::all_modes() {
            settings.stack_trace_enabled = stack_trace;
            settings.cache_size = cache_size;
            modes.push(settings);
        }
    }
    modes
}

/// What a command becomes after a trip without StackTraceEnabled: exceptions lose their
/// frames and causes, which are not sent then.
fn without_stack_traces(command: &Command) -> Command {
    fn strip(exception: &mut Option<ExceptionInfo>) {
        if let Some(e) = exception {
            e.stack_trace.clear();
            e.cause = None;
        }
    }
    let mut command = command.clone();
    match &mut command {
        Command::ExceptionResponse(r) => strip(&mut r.exception),
        Command::ConnectionError(e) => strip(&mut e.exception),
        Command::MessageAck(a) => strip(&mut a.poison_cause),
        _ => {}
    }
    command
}

/// Encodes `commands` with one encoder, feeds the bytes to one decoder in pieces of the
/// given sizes (cycled), and checks that the same commands come out.
fn round_trip(settings: WireSettings, commands: &[Command], pieces: &[usize]) {
    let mut encoder = Encoder::new(settings);
    let mut wire = BytesMut::new();
    for command in commands {
        encoder.encode(command, &mut wire).expect("encodes");
    }
    let expected: Vec<Command> = if settings.stack_trace_enabled {
        commands.to_vec()
    } else {
        commands.iter().map(without_stack_traces).collect()
    };

    let mut decoder = Decoder::new(settings);
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    let mut rest = &wire[..];
    for &piece in pieces.iter().cycle() {
        let (now, later) = rest.split_at(piece.min(rest.len()));
        buf.extend_from_slice(now);
        rest = later;
        while let Some(command) = decoder.decode(&mut buf).expect("decodes") {
            decoded.push(command);
        }
        if rest.is_empty() {
            break;
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    assert_eq!(decoded, expected, "settings {settings:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Sequences of any commands, in all 16 modes, read in whole and in random pieces.
    #[test]
    fn any_commands_in_every_mode(
        commands in vec(strategy::command(true), 1..6),
        pieces in vec(1..64usize, 1..8),
    ) {
        for settings in modes(1024) {
            round_trip(settings, &commands, &[usize::MAX]);
            round_trip(settings, &commands, &pieces);
        }
    }

    /// Tiny caches: slots are reused within and across frames.
    #[test]
    fn tiny_caches_reuse_slots(
        commands in vec(strategy::command(true), 1..8),
        cache_size in 1..4u16,
    ) {
        for settings in modes(cache_size) {
            round_trip(settings, &commands, &[usize::MAX]);
        }
    }

    /// Messages (the hot path) in long sequences, so that ids recur and hit the cache.
    #[test]
    fn message_streams(
        messages in vec(strategy::message(), 1..24),
        pieces in vec(1..200usize, 1..4),
    ) {
        let commands: Vec<Command> = messages.into_iter().map(Command::from).collect();
        for settings in modes(16) {
            round_trip(settings, &commands, &pieces);
        }
    }

    /// Property maps survive their own encoding.
    #[test]
    fn primitive_maps(map in strategy::primitive_map()) {
        let mut out = BytesMut::new();
        map.encode(&mut out).unwrap();
        prop_assert_eq!(PrimitiveMap::decode(&out), Ok(map));
    }
}

/// One instance of every command type, round-tripped in every mode: a fixed, readable
/// complement to the random sequences.
#[test]
fn every_command_type_in_every_mode() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    let mut commands = Vec::new();
    // Draw until every type id has appeared a few times.
    while seen.len() < 33 || commands.len() < 400 {
        let command = strategy::command(true)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        seen.insert(command.type_id());
        commands.push(command);
        assert!(commands.len() < 100_000, "types never drawn: {seen:?}");
    }
    for settings in modes(1024) {
        round_trip(settings, &commands, &[usize::MAX]);
        round_trip(settings, &commands, &[7, 1, 300]);
    }
}
