//! The real `aos-server` binary, started as a user would: no configuration on SQLite,
//! `DATABASE_URL` on PostgreSQL, plus `migrate`, `config check` and SIGTERM.

// Integration tests: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aos-server");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A command with none of the caller's AOS configuration leaking in.
fn server_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd);
    for (key, _) in std::env::vars() {
        if key.starts_with("AOS_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Minimal HTTP/1.1 GET: returns (status, body).
fn get(port: u16, path: &str, request_id: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Request-Id: {request_id}\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

struct Running {
    child: Child,
    port: u16,
    stdout: std::sync::mpsc::Receiver<String>,
    startup: Vec<String>,
}

/// Starts `serve` and waits for the "listening" line.
fn start(mut cmd: Command, port: u16) -> Running {
    cmd.env("AOS_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("AOS_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match line {
            Ok(line) if line.starts_with("AOS is listening on http://") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("server did not start; output:\n{}", seen.join("\n")),
        }
    }
    Running {
        child,
        port,
        stdout: rx,
        startup: seen,
    }
}

impl Running {
    /// SIGTERM, then the exit status and everything printed.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        let mut output = std::mem::take(&mut self.startup);
        output.extend(self.stdout.try_iter());
        (status, output.join("\n"))
    }
}

fn assert_serves(running: &Running, backend: &str) {
    let (status, body) = get(running.port, "/healthz", "smoke-live-1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    let (status, body) = get(running.port, "/readyz", "smoke-ready-1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\"") && body.contains(backend), "{body}");
}

#[test]
fn serves_on_sqlite_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(server_command(dir.path()), free_port());
    assert_serves(&running, "sqlite");
    assert!(dir.path().join("data/aos.db").exists());
    let token_file = dir.path().join("data/operator-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (status, logs) = running.stop();
    assert!(status.success(), "exit {status:?}\n{logs}");
    // Every request's log line carries its id; the generated token is never printed.
    let line = logs
        .lines()
        .find(|l| l.contains("smoke-ready-1"))
        .unwrap_or_else(|| panic!("no request log:\n{logs}"));
    assert!(line.contains("\"status\":200"), "{line}");
    assert!(logs.contains("operator-token"), "the token's path is logged");
    assert!(!logs.contains(token.trim()), "the token itself must never be logged");
}

#[test]
fn serves_on_postgres_from_database_url() {
    let admin = std::env::var("AOS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("aos_bin_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = |statement: String| {
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL for tests is unreachable at {admin}: {e}"));
            let driver = tokio::spawn(connection);
            client.batch_execute(&statement).await.unwrap();
            drop(client);
            let _ = driver.await;
        })
    };
    sql(format!("CREATE DATABASE \"{name}\""));
    let mut url = url_with_database(&admin, &name);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path());
    cmd.env("DATABASE_URL", &url);
    let running = start(cmd, free_port());
    assert_serves(&running, "postgres");
    assert!(
        !dir.path().join("data/aos.db").exists(),
        "PostgreSQL was asked for, not SQLite"
    );
    let (status, logs) = running.stop();
    assert!(status.success(), "exit {status:?}\n{logs}");
    sql(format!("DROP DATABASE \"{name}\" WITH (FORCE)"));
    url.clear();
}

fn url_with_database(admin: &str, name: &str) -> String {
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[test]
fn migrate_applies_once_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = server_command(dir.path()).arg("migrate").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let folders = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    let first = run();
    assert!(first.contains(&format!("applied {folders} migration(s)")), "{first}");
    assert!(run().contains("database is up to date"));
}

#[test]
fn config_check_names_the_bad_key_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aos.toml"),
        "[server]\nbind = \"127.0.0.1:9\"\n[database]\npool = 3\n",
    )
    .unwrap();
    let out = server_command(dir.path())
        .args(["--config", "aos.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pool"), "{stderr}");

    std::fs::write(
        dir.path().join("aos.toml"),
        "[database]\nurl = \"postgres://aos:hunter2hunter2@db:5432/aos\"\n",
    )
    .unwrap();
    let out = server_command(dir.path())
        .args(["--config", "aos.toml", "config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("configuration OK") && stdout.contains("postgres"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn a_policy_that_fails_to_load_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.rego"), "package aos.invoke\ndeny contains\n").unwrap();
    let out = server_command(dir.path())
        .env("AOS_SERVER__BIND", format!("127.0.0.1:{}", free_port()))
        .env("AOS_POLICY__DEFAULT_POLICY_FILE", "bad.rego")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success(), "must not start");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("default policy"), "{printed}");
    assert!(!printed.contains("listening"), "{printed}");
}
