//! A minimal HTTP/1.1 upstream for end-to-end tests: answers every request with a small JSON
//! body naming the path, and records the request heads it saw.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex},
    thread,
};

#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    /// Serves on 127.0.0.1 on a free port until the process ends (threads are detached and
    /// only ever block in accept or on a client that the test closes).
    pub fn start() -> anyhow::Result<Upstream> {
        Self::start_on("127.0.0.1:0")
    }

    /// Like `start`, on a given address.
    pub fn start_on(addr: &str) -> anyhow::Result<Upstream> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || {
                    let Ok(read) = stream.try_clone() else { return };
                    let mut reader = BufReader::new(read);
                    let mut w = stream;
                    loop {
                        let Some(head) = read_head(&mut reader) else {
                            return;
                        };
                        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        if let Ok(mut l) = log.lock() {
                            l.push(head.clone());
                        }
                        let body = format!("{{\"upstream\":\"e2e\",\"path\":\"{path}\"}}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nserver: upstream/9.9\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Upstream { addr, seen })
    }
}

impl Upstream {
    /// `http://127.0.0.1:<port>`, for `[[upstream]] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one HTTP/1.1 request head (without its blank line); `None` when the peer is gone.
pub fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            return Some(head);
        }
        head.push_str(&line);
    }
}
