//! A client of BIRD's control socket (what `birdc` speaks), kept open so that polling
//! every few milliseconds costs one request, not a process.
//!
//! Replies are lines that start with a four-digit code; a line whose code is followed by
//! a space and starts with 0 (done), 8 or 9 (errors) ends the reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

pub struct Birdc {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Birdc {
    pub fn connect(socket: &Path) -> Result<Birdc, String> {
        let stream =
            UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut b = Birdc {
            reader: BufReader::new(stream),
            writer,
        };
        // The greeting: "0001 BIRD 2.0.12 ready."
        b.reply()?;
        Ok(b)
    }

    /// Connects, retrying for up to `secs` seconds while BIRD starts.
    pub fn connect_retry(socket: &Path, secs: u64) -> Result<Birdc, String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            match Birdc::connect(socket) {
                Ok(b) => return Ok(b),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }

    fn reply(&mut self) -> Result<String, String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("reading BIRD's socket: {e}"))?;
            if n == 0 {
                return Err("BIRD closed its control socket".into());
            }
            let b = line.as_bytes();
            let last = b.len() >= 5
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b' '
                && matches!(b[0], b'0' | b'8' | b'9');
            text += &line;
            if last {
                return Ok(text);
            }
        }
    }

    pub fn command(&mut self, cmd: &str) -> Result<String, String> {
        self.writer
            .write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| format!("writing BIRD's socket: {e}"))?;
        self.reply()
    }

    /// The BGP protocol's line of `show protocols` when it is Established.
    pub fn established(&mut self, protocol: &str) -> Result<Option<String>, String> {
        let text = self.command(&format!("show protocols {protocol}"))?;
        Ok(text
            .lines()
            .find(|l| l.contains(protocol) && l.contains("Established"))
            .map(str::to_string))
    }

    /// How many routes the protocol has in its tables.
    pub fn routes(&mut self, protocol: &str) -> Result<usize, String> {
        let text = self.command(&format!("show route protocol {protocol} count"))?;
        // "1007-10000 of 10000 routes for 10000 networks in table master6"
        Ok(text
            .lines()
            .filter(|l| l.contains(" routes for ") && !l.contains("Total:"))
            .filter_map(|l| body(l).split_whitespace().next()?.parse::<usize>().ok())
            .sum())
    }

    /// Whether BIRD's BFD session with `peer` is Up.
    pub fn bfd_up(&mut self, peer: &str) -> Result<bool, String> {
        let text = self.command("show bfd sessions")?;
        Ok(text.lines().any(|l| {
            let w: Vec<&str> = body(l).split_whitespace().collect();
            w.first() == Some(&peer) && w.contains(&"Up")
        }))
    }
}

/// A reply line without its code ("1007-", "0000 ") or continuation space.
fn body(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && matches!(b[4], b'-' | b' ') {
        &line[5..]
    } else {
        line.trim_start()
    }
}
