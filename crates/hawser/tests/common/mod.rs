//! Shared by the integration tests: broker processes stopped by PID.
#![allow(dead_code)]

pub mod traffic;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `hawser serve` process, stopped by PID when dropped.
pub struct Broker {
    pub port: u16,
    /// Its own directory (the log goes there).
    pub dir: PathBuf,
    /// The data directory (shared by the brokers of a shared store).
    pub data: PathBuf,
    /// The status endpoint's port, for brokers started with one.
    pub status_port: Option<u16>,
    child: Option<Child>,
    args: Vec<String>,
}

impl Broker {
    pub fn start(dir: &Path, port: u16) -> Broker {
        Broker::start_with(dir, port, &[])
    }

    /// Starts with extra `hawser serve` arguments.
    pub fn start_with(dir: &Path, port: u16, args: &[&str]) -> Broker {
        let mut b = Broker {
            port,
            dir: dir.to_owned(),
            data: dir.join("data"),
            status_port: None,
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        b.restart();
        b
    }

    /// One of the brokers of the shared store `data`, with its log and state in
    /// `dir` and a status endpoint; returns once that endpoint answers (a
    /// standby serves no STOMP).
    pub fn start_shared(dir: &Path, data: &Path, port: u16, args: &[&str]) -> Broker {
        let status_port = free_port();
        let mut all = vec![
            "--ha".to_owned(),
            "shared-store".to_owned(),
            "--status".to_owned(),
            format!("127.0.0.1:{status_port}"),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut b = Broker {
            port,
            dir: dir.to_owned(),
            data: data.to_owned(),
            status_port: Some(status_port),
            child: None,
            args: all,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .args(["--stomp", &format!("127.0.0.1:{}", self.port)])
            // Any free port: the default 61616 would clash between brokers.
            .args(["--openwire", "127.0.0.1:0"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start broker");
        self.child = Some(child);
        let ready_port = self.status_port.unwrap_or(self.port);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", ready_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker on {} did not start",
                ready_port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// The role (`master`, `slave`, `standalone`) and epoch its status endpoint
    /// reports; `None` if it does not answer.
    pub fn role(&self) -> Option<(String, u64)> {
        let port = self.status_port?;
        let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["stat", "--json", "--status", &format!("127.0.0.1:{port}")])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some((v["role"].as_str()?.to_owned(), v["epoch"].as_u64()?))
    }

    /// Waits until the broker reports `role`; returns its epoch.
    pub fn wait_for_role(&self, role: &str, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some((r, epoch)) = self.role() {
                if r == role {
                    return epoch;
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker {} did not become {role} within {within:?} (it is {:?})",
                self.port,
                self.role()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes `dir` and returns it.
pub fn mkdir(dir: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
