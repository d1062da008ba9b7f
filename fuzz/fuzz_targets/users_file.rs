//! The users file is written by an operator (or `hawser passwd`) and read at
//! start and on every SIGHUP: its parser must refuse what is malformed, with
//! its line, and never panic; every user it accepts can be looked up by name.
#![no_main]

use std::path::Path;

use hawser::security::users::Users;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(users) = Users::parse(&text, Path::new("users")) else {
        return;
    };
    let mut named = 0;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let user = users.user(name).expect("a user of an accepted line");
        assert_eq!(&*user.name, name);
        // Names are what ACL lists are split on: none may hold a separator.
        for g in user.groups.iter().chain([&user.name]) {
            assert!(!g.is_empty() && !g.contains([':', ',', '#', ' ']));
        }
        named += 1;
    }
    assert_eq!(
        named,
        users.len(),
        "every user parsed is on a line of its own"
    );
});
