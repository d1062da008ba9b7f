//! `hawser passwd`: adds, changes or removes a user in a users file.
//!
//! The password comes from standard input (its first line), never from the
//! command line, where other users of the machine could read it in the
//! process list: `echo "$PASSWORD" | hawser passwd --users-file users alice`.
//! The running broker reads the file again at SIGHUP.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;

use super::users::{hash_password, remove_user, set_user};

/// What `hawser passwd` is told.
#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The users file to change (created if missing).
    #[arg(long, value_name = "FILE")]
    pub users_file: PathBuf,
    /// The user.
    pub user: String,
    /// Its groups, comma-separated (ACL entries name groups or users).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Remove the user instead.
    #[arg(long)]
    pub delete: bool,
}

/// Runs `hawser passwd`.
///
/// # Errors
/// No password on standard input, a bad name, or a file that cannot be written.
pub fn run(args: &PasswdArgs) -> anyhow::Result<()> {
    if args.delete {
        if !remove_user(&args.users_file, &args.user)? {
            anyhow::bail!("no user {:?} in {}", args.user, args.users_file.display());
        }
        eprintln!("removed {:?} from {}", args.user, args.users_file.display());
        return Ok(());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("password for {:?} (the line is shown as typed):", args.user);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    let groups: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    set_user(
        &args.users_file,
        &args.user,
        &hash_password(password)?,
        &groups,
    )?;
    eprintln!("set {:?} in {}", args.user, args.users_file.display());
    Ok(())
}
